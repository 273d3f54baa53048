import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, startTestApi, type TestApi } from "../support/api.js";

let t: TestApi;
beforeAll(async () => {
  t = await startTestApi({ CHAT_CORS_ORIGINS: "https://app.example.com, http://localhost:5173" });
});
afterAll(() => t.stop());

describe("CORS for browser clients", () => {
  const path = "/chat.v1.UserService/ListUsers";

  it("answers the preflight of an allowed origin with the Connect headers", async () => {
    const res = await fetch(`${t.url}${path}`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,authorization,connect-protocol-version",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase();
    for (const h of ["content-type", "authorization", "connect-protocol-version", "x-grpc-web"]) expect(allowed).toContain(h);
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
  });

  it("lets an allowed origin read responses, including gRPC-Web status headers", async () => {
    const res = await fetch(`${t.url}${path}`, {
      method: "POST",
      headers: { origin: "http://localhost:5173", "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
      body: "{}",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
    expect(res.headers.get("access-control-expose-headers")!.toLowerCase()).toContain("grpc-status");
  });

  it("grants nothing to other origins", async () => {
    const res = await fetch(`${t.url}${path}`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example.net", "access-control-request-method": "POST" },
    });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});
