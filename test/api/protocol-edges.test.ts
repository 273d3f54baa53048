/**
 * Errors that never reach a handler still come in the shape of the protocol
 * the request speaks: a Connect error body with its HTTP status, or gRPC's
 * trailers-only status; never a bare status or plain text.
 */
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, startTestApi, type TestApi } from "../support/api.js";

let t: TestApi;
beforeAll(async () => {
  t = await startTestApi();
});
afterAll(() => t.stop());

const call = (path: string, init: RequestInit) => fetch(`${t.url}${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...init.headers } });

describe("protocol edges", () => {
  it("answer a missing or unknown Content-Type with 415 and a Connect error that says what to send", async () => {
    for (const headers of [{}, { "content-type": "application/jsonx" }] as Array<Record<string, string>>) {
      const res = await call("/chat.v1.UserService/ListUsers", { method: "POST", body: new Uint8Array([123, 125]), headers });
      expect(res.status).toBe(415);
      expect(res.headers.get("content-type")).toBe("application/json");
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code).toBe("unknown");
      expect(body.message).toMatch(/application\/json or application\/proto/);
    }
  });

  it("answer a wrong HTTP method with 405, Allow, and a Connect error", async () => {
    const res = await call("/chat.v1.MessageService/PostMessage", { method: "PUT", body: "{}", headers: { "content-type": "application/json" } });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
    expect(((await res.json()) as { code: string; message: string }).message).toMatch(/PUT is not allowed .*use POST/);
    const reads = await call("/chat.v1.MessageService/ListMessages", { method: "DELETE", headers: { "content-type": "application/json" } });
    expect(reads.headers.get("allow")).toBe("POST, GET");
    const health = await fetch(`${t.url}/healthz`, { method: "POST" });
    expect(health.status).toBe(405);
    expect(health.headers.get("allow")).toBe("GET");
  });

  it("answer an unknown method as the protocol does: Connect 404 unimplemented, gRPC status 12", async () => {
    const connect = await call("/chat.v1.Nothing/Here", { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    expect(connect.status).toBe(404);
    expect(await connect.json()).toEqual({ code: "unimplemented", message: "no such method: /chat.v1.Nothing/Here" });
    for (const contentType of ["application/grpc", "application/grpc-web+proto"]) {
      const grpc = await call("/chat.v1.Nothing/Here", { method: "POST", body: new Uint8Array(5), headers: { "content-type": contentType } });
      expect(grpc.status).toBe(200);
      expect(grpc.headers.get("grpc-status")).toBe("12");
      expect(decodeURIComponent(grpc.headers.get("grpc-message")!)).toBe("no such method: /chat.v1.Nothing/Here");
    }
  });

  it("answer a request whose Host forms no URL with 400 and a Connect error", async () => {
    const { port } = new URL(t.url);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port, method: "POST", path: "/chat.v1.UserService/ListUsers", headers: { host: "bad host", "content-type": "application/json" } },
        (res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end("{}");
    });
    expect(answer.status).toBe(400);
    expect((JSON.parse(answer.body) as { code: string }).code).toBe("invalid_argument");
  });
});
