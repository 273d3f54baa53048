/**
 * The upstream behaviour that rpc/connect-node-adapter.ts works around, shown
 * on connect-node's own functions, next to what the adapter does instead.
 * When an upgrade of @connectrpc/connect(-node) changes any of it, a test
 * here fails: then the adapter (and its header comment) can be simplified.
 */
import { create } from "@bufbuild/protobuf";
import { createConnectRouter, type ConnectRouter } from "@connectrpc/connect";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import { connectNodeAdapter, universalRequestFromNodeRequest } from "@connectrpc/connect-node";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../core/logger.js";
import { GetUserResponseSchema, UserService } from "../../gen/chat/v1/user_pb.js";
import { CHECKED_CONNECT_VERSION, createRpcHandler, universalRequestOf } from "../../rpc/connect-node-adapter.js";

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const routes = (router: ConnectRouter) =>
  router.service(UserService, {
    async getUser() {
      return create(GetUserResponseSchema, {});
    },
  });

/** A body that is not binary protobuf: field 1 as a varint that never ends. */
const GARBAGE = new Uint8Array([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

describe("connect-node, as the adapter found it", () => {
  it("is the version the adapter was checked against, pinned exactly", () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { dependencies: Record<string, string> };
    for (const name of ["@connectrpc/connect", "@connectrpc/connect-node"]) {
      expect(pkg.dependencies[name]).toBe(CHECKED_CONNECT_VERSION);
      const installed = JSON.parse(readFileSync(`node_modules/${name}/package.json`, "utf8")) as { version: string };
      expect(installed.version).toBe(CHECKED_CONNECT_VERSION);
    }
  });

  it("1. aborts every request's signal once its answer is complete (the adapter: only when the client leaves first)", async () => {
    const signals: Array<{ upstream: AbortSignal; ours: AbortSignal }> = [];
    const url = await serve((req, res) => {
      signals.push({ upstream: universalRequestFromNodeRequest(req, res, undefined, undefined).signal, ours: universalRequestOf(req, res).signal });
      res.end("ok");
    });
    expect(await (await fetch(url, { method: "POST", body: "x" })).text()).toBe("ok");
    await new Promise((r) => setTimeout(r, 50));
    expect(signals).toHaveLength(1);
    expect(signals[0]!.upstream.aborted).toBe(true);
    expect(signals[0]!.ours.aborted).toBe(false);
  });

  it("2. throws out of the request handler on a Host header that forms no URL (the adapter: 400)", async () => {
    const thrown: unknown[] = [];
    const url = await serve((req, res) => {
      try {
        universalRequestFromNodeRequest(req, res, undefined, undefined);
      } catch (err) {
        thrown.push(err);
      }
      res.end();
    });
    const { port } = new URL(url);
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/x", headers: { host: "bad host" } }, (res) => {
        res.resume();
        res.on("end", resolve);
      });
      req.on("error", reject);
      req.end();
    });
    expect(thrown).toHaveLength(1);
    expect(thrown[0]).toBeInstanceOf(TypeError);

    const ours = createRpcHandler({ routes, logger: createLogger("silent") });
    const oursUrl = await serve((req, res) => {
      if (!ours(req, res)) res.writeHead(404).end();
    });
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port: new URL(oursUrl).port, method: "POST", path: "/chat.v1.UserService/GetUser", headers: { host: "bad host", "content-type": "application/json" } },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      );
      req.on("error", reject);
      req.end("{}");
    });
    expect(status).toBe(400);
  });

  it("5. destroys the request when its body is left early (the adapter: leaves it, and the client gets its answer)", async () => {
    const destroyed: Record<string, boolean> = {};
    const url = await serve(async (req, res) => {
      const u = req.url === "/upstream" ? universalRequestFromNodeRequest(req, res, undefined, undefined) : universalRequestOf(req, res);
      for await (const _ of u.body as AsyncIterable<Uint8Array>) break;
      await new Promise((r) => setImmediate(r));
      destroyed[req.url!] = req.destroyed;
      if (!req.destroyed) res.end("done");
    });
    const { port } = new URL(url);
    // A body in two parts, so that the handler leaves with the second still unread.
    const send = (path: string) =>
      new Promise<string>((resolve) => {
        const req = http.request({ host: "127.0.0.1", port, method: "POST", path, headers: { "content-type": "application/proto" } }, (res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d));
          res.on("end", () => resolve(body));
          res.on("error", () => resolve("response failed"));
        });
        req.setTimeout(1000, () => {
          req.destroy();
          resolve("no answer");
        });
        req.on("error", () => resolve("request failed"));
        req.write(Buffer.alloc(16, 1));
        setTimeout(() => req.end(Buffer.alloc(16, 2)), 100);
      });
    expect(await send("/upstream")).toBe("no answer");
    expect(await send("/ours")).toBe("done");
    expect(destroyed).toEqual({ "/upstream": true, "/ours": false });
  });

  it("3. answers a body that is not binary protobuf with INTERNAL (the adapter: INVALID_ARGUMENT)", async () => {
    const upstream = await serve(connectNodeAdapter({ routes }));
    const ours = createRpcHandler({ routes, logger: createLogger("silent") });
    const oursUrl = await serve((req, res) => {
      if (!ours(req, res)) res.writeHead(404).end();
    });
    const post = (base: string) =>
      fetch(`${base}/chat.v1.UserService/GetUser`, { method: "POST", headers: { "content-type": "application/proto" }, body: GARBAGE });
    const before = await post(upstream);
    expect(before.status).toBe(500);
    const error = (await before.json()) as { code: string; message: string };
    expect(error.code).toBe("internal");
    expect(error.message).toMatch(/^parse binary:/);

    const after = await post(oursUrl);
    expect(after.status).toBe(400);
    expect(((await after.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("3b. the same for gRPC, in the status trailer", async () => {
    const router = createConnectRouter();
    routes(router);
    const handler = router.handlers.find((h) => h.method.name === "GetUser")!;
    const frame = Buffer.alloc(5 + GARBAGE.length);
    frame.writeUInt32BE(GARBAGE.length, 1);
    Buffer.from(GARBAGE).copy(frame, 5);
    const request: UniversalServerRequest = {
      httpVersion: "2.0",
      method: "POST",
      url: "http://localhost/chat.v1.UserService/GetUser",
      header: new Headers({ "content-type": "application/grpc", te: "trailers" }),
      body: (async function* () {
        yield new Uint8Array(frame);
      })(),
      signal: new AbortController().signal,
      contextValues: undefined,
    };
    const response = await handler(request);
    for await (const _ of response.body ?? []) void _;
    const status = response.header?.get("grpc-status") ?? response.trailer?.get("grpc-status");
    expect(status).toBe("13");
    expect(decodeURIComponent(response.trailer?.get("grpc-message") ?? response.header?.get("grpc-message") ?? "")).toMatch(/^parse binary:/);
  });
});
