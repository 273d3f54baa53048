/** Messages that change, through the API: edits, deletes, threads, reactions, mentions, pins, and every bad input. */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryMode, startTestApi, Visibility, type TestApi, type TestUser } from "../support/api.js";

let t: TestApi;
let alice: TestUser, bob: TestUser, carol: TestUser, outsider: TestUser;
let channel: bigint;
let n = 0;

beforeAll(async () => {
  t = await startTestApi();
  [alice, bob, carol, outsider] = [await t.newUser("Alice"), await t.newUser("Bob"), await t.newUser("Carol"), await t.newUser("Out")];
  channel = await channelOf(alice, [bob, carol]);
});
afterAll(() => t.stop());

async function channelOf(owner: TestUser, members: TestUser[], delivery = DeliveryMode.PERSISTED): Promise<bigint> {
  const id = (await owner.channels.createChannel({ name: `conv-${Date.now().toString(36)}-${++n}`, delivery })).channel!.id;
  for (const m of members) await m.channels.joinChannel({ channelId: id });
  return id;
}

const post = async (u: TestUser, text: string, extra: { channelId?: bigint; threadRootId?: bigint; alsoToChannel?: boolean } = {}) =>
  (await u.messages.postMessage({ channelId: channel, text, ...extra })).message!;

async function rejects(call: Promise<unknown>, code: Code, message?: RegExp): Promise<void> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the call should have failed").toBeInstanceOf(ConnectError);
  expect(Code[(err as ConnectError).code]).toBe(Code[code]);
  if (message) expect((err as ConnectError).rawMessage).toMatch(message);
}

const history = async (u: TestUser, channelId = channel) => (await u.messages.listMessages({ channelId, limit: 200 })).messages;

describe("EditMessage", () => {
  it("replaces the sender's text, keeps the id, sets edited_at, and recomputes mentions", async () => {
    const m = await post(alice, `hi <@${bob.id}>`);
    expect(m.mentionedUserIds).toEqual([bob.id]);
    const { message } = await alice.messages.editMessage({ channelId: channel, messageId: m.id, text: `now <@${carol.id}> <!here>` });
    expect(message).toMatchObject({ id: m.id, text: `now <@${carol.id}> <!here>`, mentionedUserIds: [carol.id], mentionsHere: true });
    expect(message!.editedAt).toBeDefined();
    const listed = (await history(bob)).find((x) => x.id === m.id)!;
    expect(listed.text).toBe(message!.text);
    expect(listed.editedAt).toEqual(message!.editedAt);
  });

  it("refuses others' messages, unknown ones, deleted ones, ones of another channel, and bad text", async () => {
    const m = await post(alice, "mine");
    await rejects(bob.messages.editMessage({ channelId: channel, messageId: m.id, text: "x" }), Code.PermissionDenied);
    await rejects(alice.messages.editMessage({ channelId: channel, messageId: 12345n, text: "x" }), Code.NotFound);
    const other = await channelOf(alice, [bob]);
    await rejects(alice.messages.editMessage({ channelId: other, messageId: m.id, text: "x" }), Code.NotFound);
    await rejects(alice.messages.editMessage({ channelId: channel, messageId: m.id, text: "   " }), Code.InvalidArgument, /^text:/);
    await rejects(alice.messages.editMessage({ channelId: channel, messageId: m.id, text: "x".repeat(40_001) }), Code.InvalidArgument, /^text:/);
    await rejects(alice.messages.editMessage({ channelId: channel, messageId: 0n, text: "x" }), Code.InvalidArgument, /^message_id:/);
    await rejects(outsider.messages.editMessage({ channelId: channel, messageId: m.id, text: "x" }), Code.PermissionDenied);
    await alice.messages.deleteMessage({ channelId: channel, messageId: m.id });
    await rejects(alice.messages.editMessage({ channelId: channel, messageId: m.id, text: "x" }), Code.NotFound);
    // Nothing of that changed the other message.
    expect((await history(alice)).some((x) => x.text === "x")).toBe(false);
  });
});

describe("DeleteMessage", () => {
  it("lets the sender and the channel's owner delete, and nobody else", async () => {
    const byBob = await post(bob, "bob's");
    const byCarol = await post(carol, "carol's");
    await rejects(carol.messages.deleteMessage({ channelId: channel, messageId: byBob.id }), Code.PermissionDenied);
    await bob.messages.deleteMessage({ channelId: channel, messageId: byBob.id });
    await alice.messages.deleteMessage({ channelId: channel, messageId: byCarol.id });
    const ids = (await history(bob)).map((m) => m.id);
    expect(ids).not.toContain(byBob.id);
    expect(ids).not.toContain(byCarol.id);
    await rejects(bob.messages.deleteMessage({ channelId: channel, messageId: byBob.id }), Code.NotFound);
  });

  it("never serves a deleted text again: not in history, threads, pins, the page cache or the change log", async () => {
    const secret = await post(alice, "the secret");
    await alice.messages.addReaction({ channelId: channel, messageId: secret.id, emoji: "👍" });
    await alice.messages.pinMessage({ channelId: channel, messageId: secret.id });
    await post(bob, "a reply", { threadRootId: secret.id });
    await history(bob); // into the page cache, if it were cacheable
    await alice.messages.deleteMessage({ channelId: channel, messageId: secret.id });
    const tombstone = (await history(bob)).find((m) => m.id === secret.id)!;
    expect(tombstone).toMatchObject({ deleted: true, text: "", reactions: [], thread: { replyCount: 1 } });
    expect(tombstone.pinnedAt).toBeUndefined();
    const thread = await bob.messages.listThreadReplies({ channelId: channel, threadRootId: secret.id });
    expect(thread.root).toMatchObject({ deleted: true, text: "" });
    expect((await bob.messages.listPins({ channelId: channel })).messages.map((m) => m.id)).not.toContain(secret.id);
    const log = await bob.events.listChanges({ channelId: channel, afterSeq: 0n, limit: 500 });
    expect(JSON.stringify(log.events, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))).not.toContain("the secret");
  });
});

describe("threads", () => {
  it("keeps replies out of history (unless also sent to the channel), summarises them on the root, and pages them", async () => {
    const root = await post(alice, "root");
    const r1 = await post(bob, "r1", { threadRootId: root.id });
    expect(r1.threadRootId).toBe(root.id);
    // A reply to a reply attaches to the root.
    const r2 = await post(carol, "r2", { threadRootId: r1.id, alsoToChannel: true });
    expect(r2).toMatchObject({ threadRootId: root.id, alsoToChannel: true });
    const r3 = await post(bob, "r3", { threadRootId: root.id });
    const listed = await history(alice);
    expect(listed.map((m) => m.id)).toContain(r2.id);
    expect(listed.map((m) => m.id)).not.toContain(r1.id);
    const summary = listed.find((m) => m.id === root.id)!.thread!;
    expect(summary.replyCount).toBe(3);
    expect(summary.recentReplierIds).toEqual([bob.id, carol.id]);
    const page = await alice.messages.listThreadReplies({ channelId: channel, threadRootId: root.id, limit: 2 });
    expect(page.messages.map((m) => m.text)).toEqual(["r1", "r2"]);
    expect(page).toMatchObject({ hasMore: true, nextCursor: r2.id });
    const rest = await alice.messages.listThreadReplies({ channelId: channel, threadRootId: root.id, after: page.nextCursor });
    expect(rest.messages.map((m) => m.id)).toEqual([r3.id]);
    expect(page.root?.id).toBe(root.id);
  });

  it("refuses bad roots with INVALID_ARGUMENT naming the field, and threads in EPHEMERAL channels", async () => {
    const other = await channelOf(alice, []);
    const elsewhere = (await alice.messages.postMessage({ channelId: other, text: "elsewhere" })).message!;
    await rejects(post(alice, "x", { threadRootId: elsewhere.id }), Code.InvalidArgument, /^thread_root_id:/);
    await rejects(post(alice, "x", { threadRootId: 987654321n }), Code.InvalidArgument, /^thread_root_id:/);
    await rejects(post(alice, "x", { alsoToChannel: true }), Code.InvalidArgument, /^also_to_channel:/);
    const gone = await post(alice, "gone");
    await alice.messages.deleteMessage({ channelId: channel, messageId: gone.id });
    await rejects(post(alice, "x", { threadRootId: gone.id }), Code.InvalidArgument, /^thread_root_id:/);
    await rejects(alice.messages.listThreadReplies({ channelId: channel, threadRootId: 987654321n }), Code.NotFound);
    const ephemeral = await channelOf(alice, [], DeliveryMode.EPHEMERAL);
    const e = (await alice.messages.postMessage({ channelId: ephemeral, text: "now or never" })).message!;
    await rejects(alice.messages.postMessage({ channelId: ephemeral, text: "x", threadRootId: e.id }), Code.FailedPrecondition);
    await rejects(alice.messages.editMessage({ channelId: ephemeral, messageId: e.id, text: "y" }), Code.FailedPrecondition);
    await rejects(alice.messages.addReaction({ channelId: ephemeral, messageId: e.id, emoji: "👍" }), Code.FailedPrecondition);
    await rejects(alice.messages.pinMessage({ channelId: ephemeral, messageId: e.id }), Code.FailedPrecondition);
  });
});

describe("reactions", () => {
  it("counts one reaction per user and emoji, says which are the caller's, and takes them back", async () => {
    const m = await post(alice, "react");
    await bob.messages.addReaction({ channelId: channel, messageId: m.id, emoji: "👍" });
    await bob.messages.addReaction({ channelId: channel, messageId: m.id, emoji: "👍" });
    const { reactions } = await carol.messages.addReaction({ channelId: channel, messageId: m.id, emoji: ":party_parrot:" });
    expect(reactions.map((r) => [r.emoji, r.count, r.me])).toEqual([
      ["👍", 1, false],
      [":party_parrot:", 1, true],
    ]);
    const asBob = (await history(bob)).find((x) => x.id === m.id)!.reactions;
    expect(asBob.map((r) => [r.emoji, r.count, r.me, r.userIds])).toEqual([
      ["👍", 1, true, [bob.id]],
      [":party_parrot:", 1, false, [carol.id]],
    ]);
    const after = await bob.messages.removeReaction({ channelId: channel, messageId: m.id, emoji: "👍" });
    expect(after.reactions.map((r) => r.emoji)).toEqual([":party_parrot:"]);
    // A presentation selector or not: the same heart.
    await bob.messages.addReaction({ channelId: channel, messageId: m.id, emoji: "❤" });
    const hearts = await carol.messages.addReaction({ channelId: channel, messageId: m.id, emoji: "❤️" });
    expect(hearts.reactions.find((r) => r.emoji === "❤️")?.count).toBe(2);
  });

  it("refuses invalid emoji naming the field, non-members, and the 51st emoji", async () => {
    const m = await post(alice, "limits");
    for (const emoji of ["", "a", "👍👍", ":UPPER:", `:${"x".repeat(65)}:`, "::", ":a b:"]) {
      await rejects(alice.messages.addReaction({ channelId: channel, messageId: m.id, emoji }), Code.InvalidArgument, /^emoji:/);
    }
    await rejects(outsider.messages.addReaction({ channelId: channel, messageId: m.id, emoji: "👍" }), Code.PermissionDenied);
    await rejects(alice.messages.addReaction({ channelId: channel, messageId: 5555n, emoji: "👍" }), Code.NotFound);
    for (let i = 0; i < 50; i++) await alice.messages.addReaction({ channelId: channel, messageId: m.id, emoji: `:e${i}:` });
    await rejects(bob.messages.addReaction({ channelId: channel, messageId: m.id, emoji: ":e50:" }), Code.ResourceExhausted, /50/);
    const { reactions } = await bob.messages.addReaction({ channelId: channel, messageId: m.id, emoji: ":e7:" });
    expect(reactions).toHaveLength(50);
  });
});

describe("pins", () => {
  it("pins for members, lists newest first, unpins, and stops at 100 per channel", async () => {
    const ch = await channelOf(alice, [bob]);
    const posts = [];
    for (let i = 0; i < 101; i++) posts.push((await alice.messages.postMessage({ channelId: ch, text: `p${i}` })).message!);
    for (const m of posts.slice(0, 100)) await bob.messages.pinMessage({ channelId: ch, messageId: m.id });
    await rejects(bob.messages.pinMessage({ channelId: ch, messageId: posts[100]!.id }), Code.ResourceExhausted, /100/);
    await rejects(outsider.messages.pinMessage({ channelId: ch, messageId: posts[0]!.id }), Code.PermissionDenied);
    const pins = (await alice.messages.listPins({ channelId: ch })).messages;
    expect(pins).toHaveLength(100);
    expect(pins[0]).toMatchObject({ id: posts[99]!.id, pinnedBy: bob.id });
    await alice.messages.unpinMessage({ channelId: ch, messageId: posts[99]!.id });
    await bob.messages.pinMessage({ channelId: ch, messageId: posts[100]!.id });
    expect((await alice.messages.listPins({ channelId: ch })).messages[0]!.id).toBe(posts[100]!.id);
  });
});

describe("mentions", () => {
  it("keeps only members, without repeats, and the broadcast flags", async () => {
    const priv = (await alice.channels.createChannel({ name: `mp-${Date.now()}`, visibility: Visibility.PRIVATE })).channel!.id;
    await alice.channels.addMember({ channelId: priv, userId: bob.id });
    const m = (
      await alice.messages.postMessage({ channelId: priv, text: `<@${bob.id}> <@${outsider.id}> <@${bob.id}> <!channel> <@99999999>` })
    ).message!;
    expect(m).toMatchObject({ mentionedUserIds: [bob.id], mentionsChannel: true, mentionsHere: false });
  });
});

describe("the change log", () => {
  it("numbers every change of a channel 1, 2, 3 ... and replays each as the message is now", async () => {
    const ch = await channelOf(alice, [bob]);
    const m = (await alice.messages.postMessage({ channelId: ch, text: "v1" })).message!;
    await alice.messages.editMessage({ channelId: ch, messageId: m.id, text: "v2" });
    await bob.messages.addReaction({ channelId: ch, messageId: m.id, emoji: "🎉" });
    const reply = (await bob.messages.postMessage({ channelId: ch, text: "re", threadRootId: m.id })).message!;
    await alice.messages.pinMessage({ channelId: ch, messageId: m.id });
    await bob.messages.removeReaction({ channelId: ch, messageId: m.id, emoji: "🎉" });
    await bob.messages.deleteMessage({ channelId: ch, messageId: reply.id });
    await alice.messages.unpinMessage({ channelId: ch, messageId: m.id });
    const log = await bob.events.listChanges({ channelId: ch, afterSeq: 0n });
    expect(log.events.map((e) => [e.seq, e.payload.case])).toEqual([
      [1n, "messagePosted"],
      [2n, "messageEdited"],
      [3n, "reactionAdded"],
      [4n, "messagePosted"],
      [5n, "threadUpdated"],
      [6n, "messagePinned"],
      [7n, "reactionRemoved"],
      [8n, "messageDeleted"],
      [9n, "threadUpdated"],
      [10n, "messageUnpinned"],
    ]);
    expect(log).toMatchObject({ nextSeq: 10n, hasMore: false, complete: true });
    // As it is now: the post shows the edited text.
    const first = log.events[0]!.payload;
    expect(first.case === "messagePosted" && first.value.message?.text).toBe("v2");
    const page = await bob.events.listChanges({ channelId: ch, afterSeq: 3n, limit: 2 });
    expect(page.events.map((e) => e.seq)).toEqual([4n, 5n]);
    expect(page).toMatchObject({ nextSeq: 5n, hasMore: true });
    await rejects(outsider.events.listChanges({ channelId: ch, afterSeq: 0n }), Code.PermissionDenied);
    await rejects(bob.events.listChanges({ channelId: ch, afterSeq: 0n, limit: 501 }), Code.InvalidArgument, /^limit:/);
  });
});

describe("the process keeps serving after all of that", () => {
  it("still posts and reads", async () => {
    const m = await post(alice, "still here");
    expect((await history(alice))[0]!.id).toBe(m.id);
  });
});
