/** One gateway process on several addresses (one per IP alias or NIC). */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../core/config.js";
import { startTestApi, type TestApi } from "../support/api.js";
import { TestSocket } from "../support/ws-client.js";

let t: TestApi;
beforeAll(async () => {
  t = await startTestApi({ CHAT_GATEWAY_LISTEN: "127.0.0.1:0, 127.0.0.2:0, 127.0.0.3:0" });
});
afterAll(() => t.stop());

describe("CHAT_GATEWAY_LISTEN", () => {
  it("parses host:port lists, IPv6 included, and rejects junk", () => {
    const c = loadConfig({ env: { CHAT_GATEWAY_LISTEN: "10.0.0.1:8081,[::1]:9000" }, argv: [] });
    expect(c.gateway.listen).toEqual([
      { host: "10.0.0.1", port: 8081 },
      { host: "::1", port: 9000 },
    ]);
    expect(() => loadConfig({ env: { CHAT_GATEWAY_LISTEN: "nohost" }, argv: [] })).toThrow(/CHAT_GATEWAY_LISTEN/);
    expect(() => loadConfig({ env: { CHAT_GATEWAY_LISTEN: "a:99999" }, argv: [] })).toThrow(/CHAT_GATEWAY_LISTEN/);
  });

  it("listens on every address, and a message reaches sockets on all of them", async () => {
    const addresses = t.node.gateway.addresses;
    expect(addresses.map((a) => a.host)).toEqual(["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    const u = await t.newUser();
    const { channel } = await u.channels.createChannel({ name: `multi-${Date.now()}` });
    const sockets = await Promise.all(addresses.map((a) => TestSocket.connect(`ws://${a.host}:${a.port}/ws`, { token: u.token })));
    await Promise.all(sockets.map((s) => s.hello()));
    await u.messages.postMessage({ channelId: channel!.id, text: "everywhere" });
    for (const s of sockets) await s.next((f) => f.frame.case === "event" && f.frame.value.payload.case === "messagePosted");
    await Promise.all(sockets.map((s) => s.close()));
  });
});
