/** An API process and two gateway processes of their own, joined by a real NATS server. */
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChannelService } from "../../gen/chat/v1/channel_pb.js";
import { MessageService } from "../../gen/chat/v1/message_pb.js";
import { UserService } from "../../gen/chat/v1/user_pb.js";
import { runChat, startChatProcess, type ChatProcess } from "../../infra/harness/chat-process.js";
import { isEvent, postedIds, TestSocket } from "../support/ws-client.js";

const ADMIN = "standalone-admin-token-0123456789";
const SECRET = "standalone-jwt-secret-0123456789-0123456789";
const dir = mkdtempSync(path.join(tmpdir(), "chat-standalone-"));
const nats = process.env.CHAT_TEST_NATS_URL!;
// A prefix of its own, so that other suites on the same NATS server do not interfere.
const prefix = `t${process.pid}x${Date.now()}`;
const shared = { CHAT_ADMIN_TOKEN: ADMIN, CHAT_JWT_SECRET: SECRET, CHAT_BUS: "nats", CHAT_NATS_URL: nats, CHAT_SUBJECT_PREFIX: prefix };
let api: ChatProcess;
const gateways: ChatProcess[] = [];

beforeAll(async () => {
  api = await startChatProcess({ ...shared, CHAT_DATA_DIR: dir }, ["--role", "api"]);
  for (let i = 0; i < 2; i++) {
    gateways.push(await startChatProcess({ ...shared, CHAT_API_URL: api.url, CHAT_DATA_DIR: dir }, ["--role", "gateway"]));
  }
}, 60_000);

afterAll(async () => {
  for (const p of [...gateways, api]) p.child.kill("SIGTERM");
  for (const p of [...gateways, api]) expect(await p.exited).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

describe("gateways in their own processes over NATS", () => {
  it("refuses to start without the settings it needs", async () => {
    const { code, stderr } = await runChat({ CHAT_ROLE: "gateway", CHAT_BUS: "nats", CHAT_NATS_URL: nats });
    expect(code).toBe(2);
    expect(stderr).toMatch(/CHAT_API_URL: required/);
    expect(stderr).toMatch(/CHAT_JWT_SECRET: required/);
  });

  it("delivers a message posted through the API to sockets on both gateways, and posts from a gateway", async () => {
    const bearer = (t: string): Interceptor => (next) => (req) => (req.header.set("authorization", `Bearer ${t}`), next(req));
    const transport = (t: string) => createConnectTransport({ baseUrl: api.url, httpVersion: "2", interceptors: [bearer(t)] });
    const admin = createClient(UserService, transport(ADMIN));
    const { user } = await admin.createUser({ name: "Split", email: `split-${Date.now()}@example.com` });
    const { token } = await admin.issueToken({ userId: user!.id });
    const channel = (await createClient(ChannelService, transport(token)).createChannel({ name: `split-${Date.now()}` })).channel!.id;
    const sockets = await Promise.all(gateways.map((g) => TestSocket.connect(g.gatewayUrls[0]!, { token })));
    const hellos = await Promise.all(sockets.map((s) => s.hello()));
    expect(new Set(hellos.map((h) => h.serverId)).size).toBe(2);
    await new Promise((r) => setTimeout(r, 100));

    const { message } = await createClient(MessageService, transport(token)).postMessage({ channelId: channel, text: "via the API" });
    for (const s of sockets) expect(postedIds([await s.next(isEvent("messagePosted", channel))])).toEqual([message!.id]);

    sockets[0]!.send({ frame: { case: "post", value: { channelId: channel, text: "via gateway one", clientMsgId: "g1" } } });
    const ack = await sockets[0]!.next((f) => f.frame.case === "ack");
    const id = ack.frame.case === "ack" ? ack.frame.value.message!.id : 0n;
    for (const s of sockets) expect(postedIds(await s.collect(isEvent("messagePosted", channel), 2))).toEqual([message!.id, id]);
    await Promise.all(sockets.map((s) => s.close()));
  });
});
