/**
 * The RPC request handler: connect-node's adapter, rebuilt from its public
 * parts for two reasons.
 *
 * 1. connect-es answers a request body that is not valid binary protobuf with
 *    INTERNAL ("parse binary: ..."), while invalid JSON gets INVALID_ARGUMENT.
 *    Garbage from a client is the client's error, and an INTERNAL would page
 *    an operator, so such answers are rewritten to INVALID_ARGUMENT for all
 *    three protocols (Connect, gRPC, gRPC-Web). Nothing else is touched.
 * 2. Failures after the response started go to our structured logger, not
 *    console.error.
 * 3. A request's abort signal fires only when it ends before its answer
 *    (node-request.ts), not after every request.
 */
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { Logger } from "../core/logger.js";
import { universalRequestOf, type NodeRequest, type NodeResponse } from "./node-request.js";

export interface RpcHandlerOptions extends ConnectRouterOptions {
  routes(router: ConnectRouter): void;
  logger: Logger;
}

/** Handles the request if its path is an RPC and returns true; false otherwise. */
export type RpcHandler = (req: NodeRequest, res: NodeResponse) => boolean;

export function createRpcHandler(options: RpcHandlerOptions): RpcHandler {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));
  return (req, res) => {
    const handler = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (!handler) return false;
    let uReq;
    try {
      uReq = universalRequestOf(req, res);
    } catch (err) {
      res.writeHead(400, { "content-type": "text/plain" }).end(ConnectError.from(err).rawMessage);
      return true;
    }
    handler(uReq)
      .then(reportMalformedInputAsInvalid)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.error(
          { err: reason, method: `${handler.service.typeName}/${handler.method.name}` },
          "rpc response failed",
        );
      });
    return true;
  };
}

const isParseFailure = (message: string | null | undefined) =>
  message != null && safeDecode(message).startsWith("parse binary:");

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

async function reportMalformedInputAsInvalid(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const contentType = res.header?.get("content-type") ?? "";
  if (!res.body) return res;
  if (res.status === 500 && contentType.startsWith("application/json")) {
    // Connect protocol unary error: one small JSON object.
    const chunks: Uint8Array[] = [];
    for await (const chunk of res.body) chunks.push(chunk);
    const bytes = Buffer.concat(chunks);
    try {
      const error = JSON.parse(bytes.toString("utf8")) as { code?: string; message?: string };
      if (error.code === "internal" && isParseFailure(error.message)) {
        const body = Buffer.from(JSON.stringify({ ...error, code: "invalid_argument" }));
        res.header?.set("content-length", String(body.length));
        return { ...res, status: 400, body: once(body) };
      }
    } catch {
      // Not our JSON error shape: pass it on untouched.
    }
    return { ...res, body: once(bytes) };
  }
  if (contentType.startsWith("application/grpc-web")) {
    return { ...res, body: rewriteGrpcWebTrailer(res.body) };
  }
  if (contentType.startsWith("application/grpc")) {
    const header = res.header;
    if (header?.get("grpc-status") === String(Code.Internal) && isParseFailure(header.get("grpc-message"))) {
      header.set("grpc-status", String(Code.InvalidArgument));
    }
    const trailer = res.trailer;
    const body = res.body;
    return {
      ...res,
      body: (async function* () {
        yield* body;
        // gRPC trailers are filled in while the body streams; fix them before they are written.
        if (trailer?.get("grpc-status") === String(Code.Internal) && isParseFailure(trailer.get("grpc-message"))) {
          trailer.set("grpc-status", String(Code.InvalidArgument));
        }
      })(),
    };
  }
  return res;
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** gRPC-Web carries trailers in a final frame (flag 0x80) of "name: value\r\n" lines. */
async function* rewriteGrpcWebTrailer(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    if (chunk.length >= 5 && (chunk[0]! & 0x80) === 0x80) {
      const text = Buffer.from(chunk.subarray(5)).toString("utf8");
      const message = /^grpc-message: ?(.*)$/im.exec(text)?.[1]?.trim();
      if (/^grpc-status: ?13\s*$/im.test(text) && isParseFailure(message)) {
        const fixed = Buffer.from(text.replace(/^grpc-status: ?13/im, `grpc-status: ${Code.InvalidArgument}`));
        const frame = Buffer.alloc(5 + fixed.length);
        frame[0] = chunk[0]!;
        frame.writeUInt32BE(fixed.length, 1);
        fixed.copy(frame, 5);
        yield frame;
        continue;
      }
    }
    yield chunk;
  }
}
