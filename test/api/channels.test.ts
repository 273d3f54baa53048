import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChannelType, MemberRole } from "../../gen/chat/v1/channel_pb.js";
import { DeliveryMode, startTestApi, Visibility, type TestApi } from "../support/api.js";
import { Code, expectCode } from "../support/expect-code.js";

let t: TestApi;
beforeAll(async () => {
  t = await startTestApi();
});
afterAll(() => t.stop());

let n = 0;
const name = (base = "ch") => `${base}-${Date.now().toString(36)}-${++n}`;

describe("ChannelService", () => {
  it("creates a channel whose creator is its owner, and keeps names unique", async () => {
    const a = await t.newUser();
    const chName = name("General");
    const { channel, membership } = await a.channels.createChannel({ name: chName, topic: "all things" });
    expect(channel).toMatchObject({
      name: chName.toLowerCase(),
      type: ChannelType.GROUP,
      visibility: Visibility.PUBLIC,
      delivery: DeliveryMode.PERSISTED,
      topic: "all things",
      createdBy: a.id,
    });
    expect(membership).toMatchObject({ userId: a.id, role: MemberRole.OWNER });
    await expectCode(a.channels.createChannel({ name: chName }), Code.AlreadyExists, /^name: /);
    for (const bad of ["", "has space", "dots.no", "x".repeat(81), "-leading"]) {
      await expectCode(a.channels.createChannel({ name: bad }), Code.InvalidArgument, /^name: /);
    }
    await expectCode(a.channels.createChannel({ name: name(), visibility: 9 as Visibility }), Code.InvalidArgument, /^visibility: /);
    await expectCode(a.channels.createChannel({ name: name(), delivery: 9 as DeliveryMode }), Code.InvalidArgument, /^delivery: /);
    await expectCode(a.channels.createChannel({ name: name(), topic: "t".repeat(251) }), Code.InvalidArgument, /^topic: /);
  });

  it("lists my channels with my own flags, and updates them partially", async () => {
    const a = await t.newUser();
    const b = await t.newUser();
    const { channel } = await a.channels.createChannel({ name: name() });
    await b.channels.joinChannel({ channelId: channel!.id });
    const dm = await a.channels.openDirectMessage({ userId: b.id });

    const step1 = await a.channels.updateMembership({ channelId: channel!.id, isStar: true, preferences: { theme: "dark", sound: "on" } });
    expect(step1.membership).toMatchObject({ isStar: true, isFavorite: false, mute: false, preferences: { theme: "dark", sound: "on" } });
    const step2 = await a.channels.updateMembership({ channelId: channel!.id, mute: true, preferences: { sound: "" } });
    expect(step2.membership).toMatchObject({ isStar: true, mute: true, preferences: { theme: "dark" } });

    const mine = await a.channels.listMyChannels({});
    const byId = new Map(mine.channels.map((c) => [c.channel!.id, c]));
    expect(byId.get(channel!.id)?.membership).toMatchObject({ isStar: true, mute: true, role: MemberRole.OWNER });
    expect(byId.get(dm.channel!.id)?.channel?.type).toBe(ChannelType.DIRECT);
    // B's flags on the same channel are B's own.
    const theirs = await b.channels.listMyChannels({});
    expect(theirs.channels.find((c) => c.channel!.id === channel!.id)?.membership).toMatchObject({ isStar: false, mute: false });

    await expectCode(a.channels.updateMembership({ channelId: channel!.id, preferences: { ["k".repeat(65)]: "v" } }), Code.InvalidArgument, /^preferences/);
    await expectCode(
      a.channels.updateMembership({ channelId: channel!.id, preferences: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, "v"])) }),
      Code.InvalidArgument,
      /^preferences/,
    );
  });

  it("pages my channels", async () => {
    const a = await t.newUser();
    const created = [];
    for (let i = 0; i < 5; i++) created.push((await a.channels.createChannel({ name: name() })).channel!.id);
    const seen: bigint[] = [];
    let pageToken = "";
    do {
      const page = await a.channels.listMyChannels({ pageSize: 2, pageToken });
      seen.push(...page.channels.map((c) => c.channel!.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(created);
  });

  it("joins public channels, hides private ones, and leaves idempotently", async () => {
    const a = await t.newUser();
    const b = await t.newUser();
    const pub = (await a.channels.createChannel({ name: name() })).channel!;
    const priv = (await a.channels.createChannel({ name: name(), visibility: Visibility.PRIVATE })).channel!;
    const joined = await b.channels.joinChannel({ channelId: pub.id });
    expect(joined.membership).toMatchObject({ userId: b.id, role: MemberRole.MEMBER });
    expect((await b.channels.joinChannel({ channelId: pub.id })).membership?.joinedAt).toEqual(joined.membership?.joinedAt);
    await expectCode(b.channels.joinChannel({ channelId: priv.id }), Code.NotFound);
    await b.channels.leaveChannel({ channelId: pub.id });
    await b.channels.leaveChannel({ channelId: pub.id });
    await expectCode(b.messages.postMessage({ channelId: pub.id, text: "hi" }), Code.PermissionDenied);
  });

  it("lets members add people to private channels and only the owner remove others", async () => {
    const owner = await t.newUser();
    const m = await t.newUser();
    const x = await t.newUser();
    const priv = (await owner.channels.createChannel({ name: name(), visibility: Visibility.PRIVATE })).channel!;
    await owner.channels.addMember({ channelId: priv.id, userId: m.id });
    expect((await m.channels.getChannel({ channelId: priv.id })).channel?.id).toBe(priv.id);
    await m.channels.addMember({ channelId: priv.id, userId: x.id });
    await expectCode(m.channels.removeMember({ channelId: priv.id, userId: x.id }), Code.PermissionDenied);
    await owner.channels.removeMember({ channelId: priv.id, userId: x.id });
    await expectCode(x.channels.getChannel({ channelId: priv.id }), Code.NotFound);
    await expectCode(owner.channels.removeMember({ channelId: priv.id, userId: x.id }), Code.NotFound);
    await expectCode(owner.channels.addMember({ channelId: priv.id, userId: 4242n }), Code.NotFound);
    await expectCode(x.channels.addMember({ channelId: priv.id, userId: x.id }), Code.NotFound);
    // Anyone may remove themselves.
    await m.channels.removeMember({ channelId: priv.id, userId: m.id });
    await expectCode(m.channels.getChannel({ channelId: priv.id }), Code.NotFound);
  });

  it("lists members page by page, for members only", async () => {
    const owner = await t.newUser();
    const ch = (await owner.channels.createChannel({ name: name() })).channel!;
    const users = [];
    for (let i = 0; i < 6; i++) {
      const u = await t.newUser();
      await u.channels.joinChannel({ channelId: ch.id });
      users.push(u.id);
    }
    const seen: bigint[] = [];
    let pageToken = "";
    do {
      const page = await owner.channels.listMembers({ channelId: ch.id, pageSize: 4, pageToken });
      seen.push(...page.members.map((m) => m.userId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual([owner.id, ...users]);
    const outsider = await t.newUser();
    await expectCode(outsider.channels.listMembers({ channelId: ch.id }), Code.PermissionDenied);
    await expectCode(owner.channels.listMembers({ channelId: ch.id, pageSize: 1001 }), Code.InvalidArgument, /^page_size/);
  });

  it("opens one direct message per pair, from both sides at once", async () => {
    const a = await t.newUser();
    const b = await t.newUser();
    const calls = Array.from({ length: 10 }, (_, i) =>
      i % 2 === 0 ? a.channels.openDirectMessage({ userId: b.id }) : b.channels.openDirectMessage({ userId: a.id }),
    );
    const results = await Promise.all(calls);
    const ids = new Set(results.map((r) => r.channel!.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const dm = results[0]!.channel!;
    expect(dm.type).toBe(ChannelType.DIRECT);
    expect(dm.visibility).toBe(Visibility.PRIVATE);
    expect(dm.directUserIds).toEqual(a.id < b.id ? [a.id, b.id] : [b.id, a.id]);
    const members = await a.channels.listMembers({ channelId: dm.id });
    expect(members.members.map((m) => m.userId).sort()).toEqual([a.id, b.id].sort());
    // Its membership is fixed.
    const c = await t.newUser();
    await expectCode(a.channels.addMember({ channelId: dm.id, userId: c.id }), Code.FailedPrecondition);
    await expectCode(a.channels.leaveChannel({ channelId: dm.id }), Code.FailedPrecondition);
    await expectCode(a.channels.removeMember({ channelId: dm.id, userId: b.id }), Code.FailedPrecondition);
    await expectCode(c.channels.joinChannel({ channelId: dm.id }), Code.NotFound);
    await expectCode(a.channels.openDirectMessage({ userId: a.id }), Code.InvalidArgument, /^user_id: /);
    await expectCode(a.channels.openDirectMessage({ userId: 31337n }), Code.NotFound);
  });

  it("renames and sets topics for members, keeping names unique", async () => {
    const a = await t.newUser();
    const b = await t.newUser();
    const one = (await a.channels.createChannel({ name: name() })).channel!;
    const two = (await a.channels.createChannel({ name: name() })).channel!;
    const renamed = await a.channels.updateChannel({ channelId: one.id, name: `${one.name}-new`, topic: "fresh" });
    expect(renamed.channel).toMatchObject({ name: `${one.name}-new`, topic: "fresh" });
    await expectCode(a.channels.updateChannel({ channelId: one.id, name: two.name }), Code.AlreadyExists);
    await expectCode(a.channels.updateChannel({ channelId: one.id }), Code.InvalidArgument);
    await expectCode(b.channels.updateChannel({ channelId: one.id, topic: "hijack" }), Code.PermissionDenied);
    const dm = (await a.channels.openDirectMessage({ userId: b.id })).channel!;
    await expectCode(a.channels.updateChannel({ channelId: dm.id, topic: "x" }), Code.FailedPrecondition);
  });
});
