/**
 * Errors answered outside connect's handlers (no such method, a wrong HTTP
 * method, a Content-Type no protocol here speaks, a request that forms no
 * URL), in the shape of the protocol the request speaks: gRPC and gRPC-Web
 * get a trailers-only answer with grpc-status and grpc-message, anything else
 * a Connect error body ({"code", "message"}) with its HTTP status. A bare
 * status or a plain-text body would leave clients to guess.
 */
import type { Code } from "@connectrpc/connect";
import { codeName } from "../chat/error-codes.js";
import type { NodeRequest, NodeResponse } from "./connect-node-adapter.js";

/** What a client may send, for the message of a 415. */
export const SUPPORTED_CONTENT_TYPES =
  "application/json or application/proto (Connect), application/grpc[+proto|+json] (gRPC), application/grpc-web[+proto|+json] (gRPC-Web)";

export interface ProtocolError {
  /** The HTTP status for Connect (gRPC answers 200, as its protocol requires). */
  status: number;
  code: Code;
  message: string;
  /** Extra headers, such as Allow for a 405. */
  headers?: Record<string, string>;
}

/**
 * 415 and 405 stay plain HTTP answers in every protocol: a client is mapped
 * the bare status (to UNKNOWN) by its protocol, whatever it speaks. A request
 * that is Connect's (its Content-Type, or none at all: Connect is this API's
 * first protocol) also gets the error body Connect clients read, with code
 * `unknown` (what Connect maps those statuses to) and a message that says why.
 * Any other Content-Type names no protocol: its client gets the bare status
 * (the conformance suite's reference clients check exactly that).
 */
export function answerProtocolError(req: NodeRequest, res: NodeResponse, error: ProtocolError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const contentType = String(req.headers["content-type"] ?? "");
  const grpcWeb = contentType.startsWith("application/grpc-web");
  const grpc = grpcWeb || contentType.startsWith("application/grpc");
  const connect = contentType === "" || /^application\/(json|proto|connect\+)/.test(contentType);
  if ((error.status === 415 || error.status === 405) && !connect) {
    res.writeHead(error.status, error.headers);
    res.end();
    return;
  }
  if (grpc) {
    // Trailers-only: the status travels in the headers of an answer without a body.
    res.writeHead(200, {
      ...error.headers,
      "content-type": grpcWeb ? "application/grpc-web+proto" : "application/grpc+proto",
      "grpc-status": String(error.code),
      "grpc-message": encodeURIComponent(error.message),
    });
    res.end();
    return;
  }
  const body = JSON.stringify({ code: codeName(error.code), message: error.message });
  res.writeHead(error.status, { ...error.headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}
