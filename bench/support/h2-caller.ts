/**
 * Connect unary calls, binary protobuf, over a few raw h2c sessions: the
 * lightest client there is, so benchmarks measure the server, not the
 * client library.
 */
import http2 from "node:http2";

export interface H2Caller {
  /** POSTs body to procedure (e.g. /chat.v1.MessageService/ListMessages); ms is the round trip. */
  call(procedure: string, token: string, body: Uint8Array): Promise<{ status: number; body: Buffer; ms: number }>;
  close(): void;
}

export function h2session(url: string): http2.ClientHttp2Session {
  const s = http2.connect(url);
  // A session that fails makes its calls fail; the benchmark counts those.
  s.on("error", () => {});
  return s;
}

export function createH2Caller(url: string, sessions: number): H2Caller {
  const pool = Array.from({ length: sessions }, () => h2session(url));
  let next = 0;
  return {
    call(procedure, token, body) {
      const session = pool[next++ % pool.length]!;
      return new Promise((resolve, reject) => {
        const t0 = performance.now();
        const req = session.request({
          ":method": "POST",
          ":path": procedure,
          "content-type": "application/proto",
          authorization: `Bearer ${token}`,
        });
        let status = 0;
        const chunks: Buffer[] = [];
        req.on("response", (h) => (status = Number(h[":status"])));
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => resolve({ status, body: Buffer.concat(chunks), ms: performance.now() - t0 }));
        req.on("error", reject);
        req.end(body);
      });
    },
    close() {
      for (const s of pool) s.close();
    },
  };
}
