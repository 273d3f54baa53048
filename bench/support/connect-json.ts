/**
 * A small Connect JSON client (unary calls, POST application/json), over
 * cleartext HTTP/2 (a few multiplexed sessions) or HTTP/1.1 with keep-alive,
 * what a browser or curl sends. No dependency beyond node:http and node:http2.
 */
import http from "node:http";
import http2 from "node:http2";

export interface ConnectReply<T = any> {
  /** HTTP status; 0 when the request failed before an answer. */
  status: number;
  /** The parsed JSON answer (the message, or a Connect error {code, message}). */
  body: T;
  /** Round trip in milliseconds. */
  ms: number;
  /** Set when the request failed before an answer (connection refused, reset, timeout). */
  error?: string;
}

export interface ConnectJson {
  /** procedure: "chat.v1.MessageService/PostMessage". Never throws: failures come back with status 0. */
  call<T = any>(procedure: string, body: unknown, token?: string): Promise<ConnectReply<T>>;
  /** Like call, but throws unless the answer is 200; returns the message. */
  ok<T = any>(procedure: string, body: unknown, token?: string): Promise<T>;
  close(): void;
}

export interface ConnectJsonOptions {
  /** "2" (h2c, default) or "1.1". */
  httpVersion?: "2" | "1.1";
  /** HTTP/2 sessions to spread calls over (default 2); HTTP/1.1 keep-alive sockets at most (default 64). */
  connections?: number;
  /** Per-call timeout (default 30 s). */
  timeoutMs?: number;
}

function parse(text: string): unknown {
  if (text === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    return { code: "unparseable", message: text.slice(0, 200) };
  }
}

export function connectJson(baseUrl: string, options: ConnectJsonOptions = {}): ConnectJson {
  const base = new URL(baseUrl);
  const timeoutMs = options.timeoutMs ?? 30_000;
  let call: ConnectJson["call"];
  let close: () => void;

  if ((options.httpVersion ?? "2") === "2") {
    const size = options.connections ?? 2;
    const pool: Array<http2.ClientHttp2Session | undefined> = new Array(size).fill(undefined);
    let next = 0;
    const session = (): http2.ClientHttp2Session => {
      const i = next++ % size;
      let s = pool[i];
      if (!s || s.closed || s.destroyed) {
        s = http2.connect(base.origin);
        s.on("error", () => {});
        s.on("close", () => {
          if (pool[i] === s) pool[i] = undefined;
        });
        pool[i] = s;
      }
      return s;
    };
    call = (procedure, body, token) =>
      new Promise((resolve) => {
        const t0 = performance.now();
        const payload = JSON.stringify(body);
        let req: http2.ClientHttp2Stream;
        try {
          req = session().request({
            ":method": "POST",
            ":path": `/${procedure}`,
            "content-type": "application/json",
            ...(token !== undefined && { authorization: `Bearer ${token}` }),
          });
        } catch (err) {
          return resolve({ status: 0, body: {} as any, ms: performance.now() - t0, error: String(err) });
        }
        let status = 0;
        let text = "";
        let settled = false;
        const settle = (r: ConnectReply) => {
          if (!settled) {
            settled = true;
            resolve(r);
          }
        };
        req.setEncoding("utf8");
        req.setTimeout(timeoutMs, () => req.close(http2.constants.NGHTTP2_CANCEL));
        req.on("response", (h) => (status = Number(h[":status"])));
        req.on("data", (c: string) => (text += c));
        req.on("end", () => settle({ status, body: parse(text), ms: performance.now() - t0 }));
        req.on("error", (err) => settle({ status: 0, body: {}, ms: performance.now() - t0, error: err.message }));
        // A stream reset (or timed out) before its end: no complete answer.
        req.on("close", () => settle({ status: 0, body: {}, ms: performance.now() - t0, error: "stream closed before a complete answer" }));
        req.end(payload);
      });
    close = () => {
      for (const s of pool) s?.close();
    };
  } else {
    const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections ?? 64 });
    call = (procedure, body, token) =>
      new Promise((resolve) => {
        const t0 = performance.now();
        const payload = JSON.stringify(body);
        const req = http.request(
          {
            host: base.hostname,
            port: base.port,
            method: "POST",
            path: `/${procedure}`,
            agent,
            headers: {
              "content-type": "application/json",
              "content-length": Buffer.byteLength(payload),
              ...(token !== undefined && { authorization: `Bearer ${token}` }),
            },
            timeout: timeoutMs,
          },
          (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => (text += c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: parse(text) as any, ms: performance.now() - t0 }));
            res.on("error", (err) => resolve({ status: 0, body: {} as any, ms: performance.now() - t0, error: err.message }));
          },
        );
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", (err) => resolve({ status: 0, body: {} as any, ms: performance.now() - t0, error: err.message }));
        req.end(payload);
      });
    close = () => agent.destroy();
  }

  return {
    call,
    async ok(procedure, body, token) {
      const r = await call(procedure, body, token);
      if (r.status !== 200) {
        const why = r.error ?? `${(r.body as { code?: string }).code ?? ""}: ${(r.body as { message?: string }).message ?? ""}`;
        throw new Error(`${procedure} answered ${r.status} (${why})`);
      }
      return r.body;
    },
    close,
  };
}
