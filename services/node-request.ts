/**
 * A Node request as connect-es's UniversalServerRequest, in place of
 * connect-node's universalRequestFromNodeRequest. The difference is the abort
 * signal: connect-node aborts every request's signal when its stream closes,
 * also after a complete answer, and an abort without a reason builds a
 * DOMException (with a stack trace) that then runs through the handler
 * context's linked AbortController. Here the signal is aborted only when the
 * request ends before its answer did: the client went away, and a streaming
 * handler must stop. Nothing waits on the signal of a request that was
 * answered. (connect's handlers still abort their own context once per call,
 * one DOMException each; that one is theirs to remove.)
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import type http from "node:http";
import type http2 from "node:http2";

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
    // A Node request is an async iterable of Buffers (Uint8Arrays); leaving the
    // loop early destroys it, as connect expects.
    body: req as AsyncIterable<Uint8Array>,
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
