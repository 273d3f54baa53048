/**
 * What an SRE reads: an access line per RPC and per socket session (method
 * or session, code, duration, user, request id; never a token or a text),
 * request ids taken from x-request-id or made, echoed in every answer and
 * every error, and metric labels in one vocabulary.
 */
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChannelService } from "../../gen/chat/v1/channel_pb.js";
import { RequestInfoSchema } from "../../gen/chat/v1/error_pb.js";
import { MessageService } from "../../gen/chat/v1/message_pb.js";
import { UserService } from "../../gen/chat/v1/user_pb.js";
import { startChatProcess, type ChatProcess } from "../../infra/harness/chat-process.js";
import { TestSocket } from "../support/ws-client.js";

const ADMIN = "observe-admin-token-0123456789";
let proc: ChatProcess;
let dataDir: string;
let token: string;
let channelId: bigint;

const headers = (values: Record<string, string>): Interceptor => (next) => (req) => {
  for (const [k, v] of Object.entries(values)) req.header.set(k, v);
  return next(req);
};
const clientsWith = (values: Record<string, string>, grpc = false) => {
  const transport = grpc
    ? createGrpcTransport({ baseUrl: proc.url, interceptors: [headers(values)] })
    : createConnectTransport({ baseUrl: proc.url, httpVersion: "1.1", interceptors: [headers(values)] });
  return { users: createClient(UserService, transport), channels: createClient(ChannelService, transport), messages: createClient(MessageService, transport) };
};

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), "chat-observe-"));
  proc = await startChatProcess({ CHAT_DATA_DIR: dataDir, CHAT_ADMIN_TOKEN: ADMIN });
  const admin = clientsWith({ authorization: `Bearer ${ADMIN}` });
  const { user } = await admin.users.createUser({ name: "Observed", email: `observed-${Date.now()}@example.com` });
  token = (await admin.users.issueToken({ userId: user!.id })).token;
  channelId = (await clientsWith({ authorization: `Bearer ${token}` }).channels.createChannel({ name: `observed-${Date.now()}` })).channel!.id;
});
afterAll(async () => {
  proc.child.kill("SIGTERM");
  await proc.exited;
  rmSync(dataDir, { recursive: true, force: true });
});

const until = async (check: () => boolean) => {
  for (const deadline = Date.now() + 5000; !check() && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
};

describe("request ids", () => {
  it("are taken from x-request-id, echoed in the answer's header, and written on the access line with the user", async () => {
    let seen: string | null = null;
    const me = createClient(
      MessageService,
      createConnectTransport({
        baseUrl: proc.url,
        httpVersion: "1.1",
        interceptors: [headers({ authorization: `Bearer ${token}`, "x-request-id": "req-42.a:b" }), (next) => async (req) => {
          const res = await next(req);
          seen = res.header.get("x-request-id");
          return res;
        }],
      }),
    );
    await me.postMessage({ channelId, text: "secret words nobody logs", clientMsgId: "obs-1" });
    expect(seen).toBe("req-42.a:b");
    await until(() => proc.logs.some((l) => l.requestId === "req-42.a:b"));
    const line = proc.logs.find((l) => l.requestId === "req-42.a:b")!;
    expect(line).toMatchObject({ msg: "rpc", method: "chat.v1.MessageService/PostMessage", code: "ok", level: 30 });
    expect(typeof line.ms).toBe("number");
    expect(line.user).toMatch(/^\d+$/);
    const everything = JSON.stringify(proc.logs);
    expect(everything).not.toContain("secret words nobody logs");
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(ADMIN);
  });

  it("are made when the caller sent none or an unusable one, and travel in every error's details, on Connect and gRPC", async () => {
    for (const grpc of [false, true]) {
      for (const given of [undefined, "x".repeat(200), "bad id with spaces"]) {
        const c = clientsWith({ authorization: `Bearer ${token}`, ...(given !== undefined && { "x-request-id": given }) }, grpc);
        const err = await c.channels.getChannel({ channelId: 999n }).then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
        expect(err?.code).toBe(Code.NotFound);
        const [info] = err!.findDetails(RequestInfoSchema);
        expect(info?.requestId).toMatch(/^[0-9a-f-]{36}$/);
        expect(err!.metadata.get("x-request-id")).toBe(info!.requestId);
        await until(() => proc.logs.some((l) => l.requestId === info!.requestId));
        expect(proc.logs.find((l) => l.requestId === info!.requestId)).toMatchObject({ msg: "rpc", code: "not_found" });
      }
    }
  });
});

describe("the access log", () => {
  it("has one line per socket session when it ends, with its code and duration", async () => {
    const socket = await TestSocket.connect(proc.gatewayUrls[0]!, { token });
    const { sessionId } = await socket.hello();
    await socket.close();
    await until(() => proc.logs.some((l) => l.session === sessionId));
    const line = proc.logs.find((l) => l.session === sessionId)!;
    expect(line).toMatchObject({ msg: "socket session", code: 1005, level: 30 });
    expect(typeof line.ms).toBe("number");
    expect(line.user).toMatch(/^\d+$/);
  });
});

describe("metrics", () => {
  it("label codes with one vocabulary: ok and Connect's names", async () => {
    await clientsWith({ authorization: "Bearer nope" }).channels.listMyChannels({}).catch(() => {});
    const text = await (await fetch(`${proc.url}/metrics`)).text();
    const codes = new Set([...text.matchAll(/chat_rpc_requests_total\{[^}]*code="([^"]+)"/g)].map((m) => m[1]));
    expect(codes.has("ok")).toBe(true);
    expect(codes.has("unauthenticated")).toBe(true);
    for (const code of codes) expect(code).toMatch(/^[a-z_]+$/);
  });
});
