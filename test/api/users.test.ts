import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi, type Protocol, type TestApi } from "../support/api.js";
import { Code, expectCode } from "../support/expect-code.js";

let t: TestApi;
beforeAll(async () => {
  t = await startTestApi();
});
afterAll(() => t.stop());

describe("UserService", () => {
  it.each<Protocol>(["connect-json", "connect-binary", "grpc", "grpc-web"])("works over %s", async (protocol) => {
    const admin = t.clients("test-admin-token-0123456789", protocol);
    const email = `${protocol}-${Date.now()}@Example.com`;
    const { user } = await admin.users.createUser({ name: `  ${protocol} user `, email });
    expect(user?.name).toBe(`${protocol} user`);
    expect(user?.email).toBe(email.toLowerCase());
    const { token, expiresAt } = await admin.users.issueToken({ userId: user!.id, ttlSeconds: 600 });
    expect(Number(expiresAt!.seconds) * 1000).toBeGreaterThan(Date.now() + 590_000);
    const me = t.clients(token, protocol);
    expect((await me.users.getUser({ userId: user!.id })).user).toEqual(user);
  });

  it("keeps emails unique, ignoring case", async () => {
    const email = `dup-${Date.now()}@example.com`;
    await t.admin.users.createUser({ name: "One", email });
    await expectCode(t.admin.users.createUser({ name: "Two", email: email.toUpperCase() }), Code.AlreadyExists, /^email: /);
  });

  it("rejects bad names and emails naming the field", async () => {
    await expectCode(t.admin.users.createUser({ name: "", email: "a@example.com" }), Code.InvalidArgument, /^name: /);
    await expectCode(t.admin.users.createUser({ name: "x".repeat(81), email: "a@example.com" }), Code.InvalidArgument, /^name: /);
    await expectCode(t.admin.users.createUser({ name: "bell\u0007", email: "a@example.com" }), Code.InvalidArgument, /^name: /);
    for (const email of ["", "not-an-email", "a@", "@b.co", "a b@c.co", `${"x".repeat(250)}@e.co`]) {
      await expectCode(t.admin.users.createUser({ name: "Valid", email }), Code.InvalidArgument, /^email: /);
    }
  });

  it("issues tokens only for existing users and within the maximum lifetime", async () => {
    await expectCode(t.admin.users.issueToken({ userId: 12345n }), Code.NotFound);
    await expectCode(t.admin.users.issueToken({ userId: 0n }), Code.InvalidArgument, /^user_id: required/);
    const u = await t.newUser();
    await expectCode(t.admin.users.issueToken({ userId: u.id, ttlSeconds: 31 * 86400 }), Code.InvalidArgument, /^ttl_seconds: /);
  });

  it("keeps admin methods for the admin", async () => {
    const u = await t.newUser();
    await expectCode(u.users.createUser({ name: "X", email: "x@example.com" }), Code.PermissionDenied);
    await expectCode(u.users.issueToken({ userId: u.id }), Code.PermissionDenied);
    await expectCode(t.clients().users.createUser({ name: "X", email: "x@example.com" }), Code.Unauthenticated);
    await expectCode(t.clients("wrong-admin-token-0123456789").users.createUser({ name: "X", email: "x@example.com" }), Code.Unauthenticated);
  });

  it("lists every user exactly once across pages", async () => {
    for (let i = 0; i < 7; i++) await t.newUser();
    const seen: bigint[] = [];
    let pageToken = "";
    do {
      const page = await t.admin.users.listUsers({ pageSize: 3, pageToken });
      seen.push(...page.users.map((u) => u.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort((a, b) => (a < b ? -1 : 1))).toEqual(seen);
    expect(seen.length).toBeGreaterThanOrEqual(7);
    await expectCode(t.admin.users.listUsers({ pageSize: 201 }), Code.InvalidArgument, /^page_size: /);
    await expectCode(t.admin.users.listUsers({ pageToken: "garbage!" }), Code.InvalidArgument, /^page_token: /);
  });

  it.each<Protocol>(["connect-json", "connect-binary", "grpc", "grpc-web"])(
    "shows every name to the workspace, and an email only to the admin and its owner, over %s",
    async (protocol) => {
      const ada = await t.newUser();
      const bob = await t.newUser();
      const asAda = t.clients(ada.token, protocol).users;
      const adaEmail = (await t.admin.users.getUser({ userId: ada.id })).user!.email;
      expect(adaEmail).toMatch(/@/);
      expect((await asAda.getUser({ userId: ada.id })).user!.email).toBe(adaEmail);
      const bobSeenByAda = (await asAda.getUser({ userId: bob.id })).user!;
      expect(bobSeenByAda.name).not.toBe("");
      expect(bobSeenByAda.email).toBe("");
      const everyone = [];
      let pageToken = "";
      do {
        const page = await asAda.listUsers({ pageSize: 200, pageToken });
        everyone.push(...page.users);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      expect(everyone.find((u) => u.id === bob.id)?.name).toBe(bobSeenByAda.name);
      expect(everyone.filter((u) => u.email !== "").map((u) => u.id)).toEqual([ada.id]);
      const adminView = await t.clients("test-admin-token-0123456789", protocol).users.listUsers({ pageSize: 200 });
      expect(adminView.users.every((u) => u.email !== "")).toBe(true);
    },
  );

  it("answers NOT_FOUND for unknown users", async () => {
    const u = await t.newUser();
    await expectCode(u.users.getUser({ userId: 999n }), Code.NotFound);
  });
});
