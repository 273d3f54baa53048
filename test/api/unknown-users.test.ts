/**
 * A correctly signed token is only as good as its user: a token whose user
 * was never created acts nowhere (RPC on every protocol, the event stream,
 * the socket), changes nothing, and no token of any content gets a 500.
 */
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_ID } from "../../core/ids.js";
import { startTestApi, type Protocol, type TestApi, type TestUser } from "../support/api.js";
import { Code, expectCode } from "../support/expect-code.js";
import { TestSocket } from "../support/ws-client.js";

let t: TestApi;
let real: TestUser;
let sign: (claims: Record<string, unknown>) => string;

beforeAll(async () => {
  t = await startTestApi();
  real = await t.newUser();
  // Signed by hand rather than with a JWT library, so that claims of any type can be sent.
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  sign = (claims) => {
    const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ iss: "chat", aud: "chat.v1", exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
    return `${body}.${createHmac("sha256", t.api.secrets.jwtSecret).update(body).digest("base64url")}`;
  };
});
afterAll(() => t.stop());

describe("tokens of users that do not exist", () => {
  it.each<Protocol>(["connect-json", "connect-binary", "grpc", "grpc-web"])("are UNAUTHENTICATED and change nothing, over %s", async (protocol) => {
    const ghost = t.clients(sign({ sub: "123456789012345" }), protocol);
    await expectCode(ghost.channels.createChannel({ name: `ghost-${protocol}-${Date.now()}` }), Code.Unauthenticated, /does not exist/);
    await expectCode(ghost.channels.openDirectMessage({ userId: real.id }), Code.Unauthenticated);
    await expectCode(ghost.channels.listMyChannels({}), Code.Unauthenticated);
    await expectCode(ghost.users.getUser({ userId: real.id }), Code.Unauthenticated);
    const mine = await real.channels.listMyChannels({});
    expect(mine.channels.filter((c) => c.channel!.directUserIds.includes(123456789012345n))).toEqual([]);
  });

  it("cannot open a socket: it closes with 4003 before any hello", async () => {
    const socket = await TestSocket.connect(t.wsUrl, { token: sign({ sub: "987654321" }) });
    const closed = await Promise.race([socket.closed, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("still open after 5 s")), 5000))]);
    expect(closed.code).toBe(4003);
    expect(socket.frames.filter((f) => f.frame.case === "hello")).toEqual([]);
  });

  it("cannot subscribe to events", async () => {
    const ghost = sign({ sub: "55555555555" });
    const res = await fetch(`${t.url}/chat.v1.EventService/Subscribe`, {
      method: "POST",
      headers: { authorization: `Bearer ${ghost}`, "content-type": "application/connect+json" },
      body: Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from("{}")]),
      signal: AbortSignal.timeout(5000),
    });
    const text = Buffer.from(await res.arrayBuffer()).toString("utf8");
    expect(text).toMatch(/"code":"unauthenticated"/);
  });

  it("work again the moment the user exists (no negative cache)", async () => {
    const u = await t.newUser();
    const token = sign({ sub: u.id.toString() });
    expect((await t.clients(token).channels.listMyChannels({})).channels).toEqual([]);
  });
});

describe("tokens of any content", () => {
  it("are answered UNAUTHENTICATED, never INTERNAL", async () => {
    const claims: Array<Record<string, unknown>> = [
      { sub: "99999999999999999999" }, // 20 digits: beyond 64 bits
      { sub: (MAX_ID + 1n).toString() },
      { sub: "0" },
      { sub: "007" },
      { sub: "-5" },
      { sub: "0x10" },
      { sub: " 12" },
      { sub: "1e3" },
      { sub: 12 },
      { sub: null },
      { sub: ["1"] },
      { sub: "1", exp: "tomorrow" },
      { sub: "1", exp: Number.MAX_SAFE_INTEGER * 10 },
      { sub: "1", aud: "other" },
      { sub: "\u0000" },
      { sub: "😀".repeat(1000) },
    ];
    const bearers = [
      ...claims.map((c) => sign(c)),
      "",
      "x",
      "a.b.c",
      "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
      "%00%ff",
      "é".repeat(4000),
      `${sign({ sub: "1" })}x`,
    ];
    for (const bearer of bearers) {
      await expectCode(t.clients(bearer).channels.listMyChannels({}), Code.Unauthenticated, undefined);
    }
  });
});
