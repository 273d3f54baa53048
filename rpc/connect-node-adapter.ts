/**
 * The one place where this project adapts connect-node to its own server:
 * the Node request/response as connect-es's universal request, the router's
 * handlers by path, and the answer written back. It is rebuilt from
 * connect-node's public parts rather than calling `connectNodeAdapter`,
 * because of these upstream behaviours of @connectrpc/connect(-node) 2.1.2
 * (test/rpc/connect-node-upstream.test.ts fails when an upgrade changes any
 * of them, so this module can be simplified then):
 *
 * 1. `universalRequestFromNodeRequest` aborts every request's signal when its
 *    stream closes, also after a complete answer. An abort without a reason
 *    builds a DOMException with a stack trace, which then runs through the
 *    handler context's linked AbortController: ~9 % of the API's CPU in unary
 *    posting. Here the signal is aborted only when the request ends before
 *    its answer did (the client went away, and a streaming handler must stop).
 * 2. `universalRequestFromNodeRequest` throws out of the request handler when
 *    the Host header cannot form a URL (TypeError from `new URL`), or is
 *    missing on HTTP/1.0 (INTERNAL). Uncaught, either stops the process. Here
 *    such a request is answered 400.
 * 3. connect-es answers a request body that is not valid binary protobuf with
 *    INTERNAL ("parse binary: ..."), while invalid JSON gets INVALID_ARGUMENT.
 *    Garbage from a client is the client's error, and an INTERNAL would page
 *    an operator, so those answers are rewritten to INVALID_ARGUMENT for all
 *    three protocols (Connect, gRPC, gRPC-Web). Nothing else is touched.
 * 4. `connectNodeAdapter` reports failures after the response started with
 *    console.error; here they go to the structured logger.
 * 5. `universalRequestFromNodeRequest` destroys the request when connect stops
 *    reading it early (a message over readMaxBytes, a handler that is done
 *    before the client), which on HTTP/1.1 destroys the connection under the
 *    answer. Here the request is left alone, and rpc/server.ts drops what is
 *    left of it once the answer is out.
 *
 * 6. connect-es has no conditional requests. Here a Connect GET whose
 *    If-None-Match names the answer's ETag (a handler sets one, e.g. history
 *    pages) is answered 304 Not Modified without its body.
 *
 * (connect's handlers still abort their own context once per call, one
 * DOMException each; that one is theirs to remove.)
 */
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type http from "node:http";
import type http2 from "node:http2";
import type { Logger } from "../core/logger.js";
import { MethodOptions_IdempotencyLevel as Idempotency } from "@bufbuild/protobuf/wkt";
import { guardJsonInts } from "./json-int-guard.js";
import { answerProtocolError, SUPPORTED_CONTENT_TYPES } from "./protocol-errors.js";

/** The connect-node version whose behaviour (above) this module was checked against. */
export const CHECKED_CONNECT_VERSION = "2.1.2";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

export function universalRequestOf(req: NodeRequest, res: NodeResponse): UniversalServerRequest {
  const authority = "authority" in req ? req.authority : req.headers.host;
  if (authority === undefined) throw new ConnectError("request has neither :authority nor Host", Code.InvalidArgument);
  return {
    httpVersion: req.httpVersion,
    method: req.method ?? "",
    url: new URL(req.url ?? "", `${"encrypted" in req.socket && req.socket.encrypted ? "https" : "http"}://${authority}`).toString(),
    header: webHeaders(req.headers),
    // A Node request is an async iterable of Buffers (Uint8Arrays). Leaving the loop
    // early (a message over readMaxBytes, a handler done before the client) must not
    // destroy it: on HTTP/1.1 that destroyed the socket, whose unread input made the
    // kernel answer with a TCP reset that could overtake the answer, and broke the
    // connection for the next request on it (conformance "Server Message Size" over
    // HTTP/1.1: "connection reset by peer"). rpc/server.ts drops the unread rest.
    body: { [Symbol.asyncIterator]: () => req.iterator({ destroyOnReturn: false }) as AsyncIterator<Uint8Array> },
    signal: abortedIfCutShort(req, res),
    contextValues: undefined,
  };
}

function abortedIfCutShort(req: NodeRequest, res: NodeResponse): AbortSignal {
  const controller = new AbortController();
  // The reason is built only for a request cut short: an error, too, costs a stack trace.
  const cutShort = (reason: () => ConnectError) => {
    if (!res.writableEnded && !controller.signal.aborted) controller.abort(reason());
  };
  if ("stream" in req) {
    // HTTP/2: the stream's close, with its reset code if the client sent one.
    req.once("close", () =>
      cutShort(() => new ConnectError(`http/2 stream closed before the answer (code 0x${(req.stream.rstCode ?? 0).toString(16)})`, Code.Canceled)),
    );
  } else {
    // HTTP/1.1: the request has no reset code; the response's close comes after
    // the body was read, and an error when the connection breaks.
    req.on("error", (err) => cutShort(() => new ConnectError("connection failed before the answer", Code.Aborted, undefined, undefined, err)));
    res.once("close", () => cutShort(() => new ConnectError("connection closed before the answer", Code.Canceled)));
  }
  return controller.signal;
}

/** Node's header object as fetch Headers; HTTP/2 pseudo-headers (":path") are left out. */
function webHeaders(nodeHeaders: http.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const name in nodeHeaders) {
    if (name.startsWith(":")) continue;
    const value = nodeHeaders[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.append(name, String(value));
  }
  return headers;
}

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
      answerProtocolError(req, res, { status: 400, code: Code.InvalidArgument, message: `bad request: ${ConnectError.from(err).rawMessage}` });
      return true;
    }
    const request = uReq;
    guardJsonInts(handler.method.input, request, options.readMaxBytes ?? Number.MAX_SAFE_INTEGER)
      .then((guarded) => {
        if (!(guarded instanceof ConnectError)) return handler(guarded);
        answerProtocolError(req, res, { status: 400, code: guarded.code, message: guarded.rawMessage });
        return undefined;
      })
      .then((uRes) => uRes && reportMalformedInputAsInvalid(uRes))
      .then((uRes) => {
        if (!uRes) return;
        // connect answers these two with a bare status: say why, in the protocol's shape.
        if (uRes.status === 415 && !uRes.body) {
          const given = req.headers["content-type"];
          return answerProtocolError(req, res, {
            status: 415,
            code: Code.Unknown,
            message: `${given === undefined ? "no Content-Type" : `Content-Type ${JSON.stringify(given)} is not supported`}: send ${SUPPORTED_CONTENT_TYPES}`,
          });
        }
        if (uRes.status === 405 && !uRes.body) {
          const get = handler.method.idempotency === Idempotency.NO_SIDE_EFFECTS;
          return answerProtocolError(req, res, {
            status: 405,
            code: Code.Unknown,
            message: `${req.method} is not allowed for ${handler.service.typeName}/${handler.method.name}: use POST${get ? " (or GET, Connect's GET for reads)" : ""}`,
            headers: { allow: get ? "POST, GET" : "POST" },
          });
        }
        if (notModified(req, uRes)) {
          res.writeHead(304, { etag: uRes.header!.get("etag")!, "cache-control": uRes.header!.get("cache-control") ?? "no-cache" });
          res.end();
          return;
        }
        return universalResponseToNodeResponse(uRes, res);
      })
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

/** A GET that already holds exactly this answer (RFC 9110 weak comparison of If-None-Match and ETag). */
function notModified(req: NodeRequest, res: UniversalServerResponse): boolean {
  const etag = res.header?.get("etag");
  const ifNoneMatch = req.headers["if-none-match"];
  if (req.method !== "GET" || res.status !== 200 || !etag || typeof ifNoneMatch !== "string") return false;
  const weak = (tag: string) => tag.trim().replace(/^W\//, "");
  return ifNoneMatch.split(",").some((tag) => tag.trim() === "*" || weak(tag) === weak(etag));
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
