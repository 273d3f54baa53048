/**
 * The authorization matrix: who may read, list or post in which channel, and
 * which credentials are refused at all.
 */
import { createSigner } from "fast-jwt";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, Visibility, type TestApi, type TestUser } from "../support/api.js";
import { Code, expectCode } from "../support/expect-code.js";

let t: TestApi;
let owner: TestUser, member: TestUser, outsider: TestUser, dmPeer: TestUser;
let pub: bigint, priv: bigint, dm: bigint;

beforeAll(async () => {
  t = await startTestApi();
  [owner, member, outsider, dmPeer] = [await t.newUser(), await t.newUser(), await t.newUser(), await t.newUser()];
  const stamp = Date.now().toString(36);
  pub = (await owner.channels.createChannel({ name: `pub-${stamp}` })).channel!.id;
  priv = (await owner.channels.createChannel({ name: `priv-${stamp}`, visibility: Visibility.PRIVATE })).channel!.id;
  dm = (await owner.channels.openDirectMessage({ userId: dmPeer.id })).channel!.id;
  await member.channels.joinChannel({ channelId: pub });
  await owner.channels.addMember({ channelId: priv, userId: member.id });
  await owner.messages.postMessage({ channelId: pub, text: "seed" });
});
afterAll(() => t.stop());

type Action = "get" | "list" | "post" | "members";
const act = (u: TestUser, action: Action, channelId: bigint) => {
  switch (action) {
    case "get":
      return u.channels.getChannel({ channelId });
    case "list":
      return u.messages.listMessages({ channelId });
    case "post":
      return u.messages.postMessage({ channelId, text: "hello" });
    case "members":
      return u.channels.listMembers({ channelId });
  }
};

describe("authorization matrix", () => {
  const actions: Action[] = ["get", "list", "post", "members"];

  it.each(actions)("members may %s in public, private and direct channels", async (action) => {
    await act(member, action, pub);
    await act(member, action, priv);
    await act(owner, action, dm);
    await act(dmPeer, action, dm);
  });

  it.each(actions)("a non-member of a public channel may see it but not %s its content", async (action) => {
    if (action === "get") {
      expect((await act(outsider, action, pub)) as object).toBeTruthy();
    } else {
      await expectCode(act(outsider, action, pub), Code.PermissionDenied, /not a member/);
    }
  });

  it.each(actions)("a private channel does not exist for non-members (%s: NOT_FOUND)", async (action) => {
    const e = await expectCode(act(outsider, action, priv), Code.NotFound);
    // Same answer as a channel that does not exist: nothing to probe.
    const missing = await expectCode(act(outsider, action, 123456789n), Code.NotFound);
    expect(e.rawMessage.replace(String(priv), "ID")).toBe(missing.rawMessage.replace("123456789", "ID"));
  });

  it.each(actions)("a direct message has exactly its two members (%s by an outsider: NOT_FOUND)", async (action) => {
    await expectCode(act(outsider, action, dm), Code.NotFound);
    await expectCode(act(member, action, dm), Code.NotFound);
  });

  it("removal takes access away at once", async () => {
    const u = await t.newUser();
    await owner.channels.addMember({ channelId: priv, userId: u.id });
    await u.messages.listMessages({ channelId: priv });
    await owner.channels.removeMember({ channelId: priv, userId: u.id });
    await expectCode(u.messages.listMessages({ channelId: priv }), Code.NotFound);
  });
});

describe("credentials", () => {
  it("refuses calls without a token", async () => {
    await expectCode(t.clients().channels.listMyChannels({}), Code.Unauthenticated, /missing bearer token/);
  });

  it("refuses a forged token (signed with another key)", async () => {
    const forged = createSigner({ key: "attacker-chosen-key-attacker-chosen-key", algorithm: "HS256", iss: "chat", aud: "chat.v1", expiresIn: 3600_000 })({
      sub: owner.id.toString(),
    });
    await expectCode(t.clients(forged).messages.listMessages({ channelId: pub }), Code.Unauthenticated, /invalid token/);
  });

  it("refuses a token whose payload was altered", async () => {
    const [h, , s] = owner.token.split(".");
    const body = Buffer.from(JSON.stringify({ sub: outsider.id.toString(), iss: "chat", aud: "chat.v1", exp: 9_999_999_999 })).toString("base64url");
    await expectCode(t.clients(`${h}.${body}.${s}`).channels.listMyChannels({}), Code.Unauthenticated);
  });

  it("refuses an expired token", async () => {
    const { token } = await t.admin.users.issueToken({ userId: member.id, ttlSeconds: 1 });
    const c = t.clients(token);
    await c.channels.listMyChannels({});
    await new Promise((r) => setTimeout(r, 2100));
    await expectCode(c.channels.listMyChannels({}), Code.Unauthenticated, /expired/);
  });

  it("keeps user methods for users: the admin credential is not a user", async () => {
    await expectCode(t.admin.channels.listMyChannels({}), Code.PermissionDenied);
    await expectCode(t.admin.messages.postMessage({ channelId: pub, text: "x" }), Code.PermissionDenied);
  });

  it("lets only the admin credential act for a user (chat-on-behalf-of), as gateway processes do", async () => {
    const asMember = async (bearer: string, userId: string) => {
      const res = await fetch(`${t.url}/chat.v1.ChannelService/ListMyChannels`, {
        method: "POST",
        headers: { authorization: `Bearer ${bearer}`, "chat-on-behalf-of": userId, "content-type": "application/json" },
        body: "{}",
      });
      return { status: res.status, body: (await res.json()) as { code?: string; channels?: unknown[] } };
    };
    const ok = await asMember("test-admin-token-0123456789", member.id.toString());
    expect(ok.status).toBe(200);
    expect(ok.body.channels?.length).toBeGreaterThan(0);
    const forged = await asMember(outsider.token, member.id.toString());
    expect(forged.body.code).toBe("permission_denied");
    const junk = await asMember("test-admin-token-0123456789", "not-a-number");
    expect(junk.body.code).toBe("invalid_argument");
  });

  it("generates and keeps the admin secret in the data folder when none is configured", async () => {
    const u = await startTestApi({ CHAT_ADMIN_TOKEN: "" });
    try {
      const file = path.join(u.dataDir, "secrets", "admin-token");
      const admin = readFileSync(file, "utf8").trim();
      expect(admin.length).toBeGreaterThanOrEqual(32);
      await u.clients(admin).users.listUsers({});
      await expectCode(u.clients("test-admin-token-0123456789").users.listUsers({}), Code.Unauthenticated);
    } finally {
      await u.stop();
    }
  });
});
