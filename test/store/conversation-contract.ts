/**
 * The ChatStore contract for messages that change: the change log, threads,
 * edits, deletes, reactions and pins. Run from describeStoreContract against
 * every store; the concurrency cases send half their calls through a peer
 * store on the same data, as a second API node would.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  LimitExceededError,
  NotFoundError,
  type ChangeRecord,
  type ChatStore,
  type MessageRecord,
} from "../../store/store.js";
import { group, membership, message, user } from "./store-contract.js";

interface Stores {
  store: ChatStore;
  peer: () => Promise<ChatStore>;
}

const NO_ONE = { userIds: [], channel: false, here: false };

async function channelOf(store: ChatStore) {
  const u = user();
  await store.createUser(u);
  const c = group(u.id);
  await store.createGroupChannel(c, membership(c.id, u.id, "owner"));
  return { owner: u.id, channelId: c.id };
}

const reply = (root: MessageRecord, senderId: bigint, text: string, alsoToChannel = false): MessageRecord => ({
  ...message(root.channelId, senderId, text),
  threadRootId: root.id,
  alsoToChannel,
});

const kinds = (changes: ChangeRecord[]) => changes.map((c) => c.kind);

async function allChanges(store: ChatStore, channelId: bigint): Promise<ChangeRecord[]> {
  const out: ChangeRecord[] = [];
  for (let after = 0n; ; ) {
    const { changes } = await store.listChanges(channelId, after, 7);
    if (changes.length === 0) return out;
    out.push(...changes);
    after = changes.at(-1)!.seq;
  }
}

/** Every seq from 1 to the last, once, in order. */
function expectDense(changes: ChangeRecord[]): void {
  expect(changes.map((c) => c.seq)).toEqual(changes.map((_, i) => BigInt(i + 1)));
}

export function describeConversationContract(stores: () => Stores): void {
  let store: ChatStore;
  let peer: ChatStore;
  beforeAll(async () => {
    store = stores().store;
    peer = await stores().peer();
  });
  afterAll(async () => {
    await peer?.close();
  });

  it("logs every post as a change, numbered 1, 2, 3 ... per channel, also across nodes", async () => {
    const { owner, channelId } = await channelOf(store);
    const other = await channelOf(store);
    const posts = Array.from({ length: 40 }, (_, i) => message(channelId, owner, `m${i}`));
    const results = await Promise.all(posts.map((m, i) => (i % 2 === 0 ? store : peer).appendMessage(m)));
    await store.appendMessage(message(other.channelId, other.owner, "elsewhere"));
    const log = await allChanges(store, channelId);
    expectDense(log);
    expect(new Set(log.map((c) => c.messageId))).toEqual(new Set(posts.map((m) => m.id)));
    expect(log.every((c) => c.kind === "posted" && c.channelId === channelId && c.actorId === owner)).toBe(true);
    // Each post was answered with its own entry.
    const answered = results.map((r) => r.changes[0]!);
    expect(new Set(answered.map((c) => c.seq)).size).toBe(posts.length);
    for (const c of answered) expect(log.find((x) => x.seq === c.seq)?.messageId).toBe(c.messageId);
    expect(await peer.listChanges(channelId, 35n, 100)).toEqual({ changes: log.slice(35), firstKeptSeq: 1n });
    expect((await store.listChanges(other.channelId, 0n, 10)).changes.map((c) => c.seq)).toEqual([1n]);
    expect(await store.listChanges(ids0(), 0n, 10)).toEqual({ changes: [], firstKeptSeq: 1n });
  });

  it("reads messages by id, as they are now", async () => {
    const { owner, channelId } = await channelOf(store);
    const a = message(channelId, owner, "a");
    const b = { ...message(channelId, owner, "b <@5>"), mentions: { userIds: [5n], channel: true, here: false } };
    await store.appendMessage(a);
    await store.appendMessage(b);
    expect(await store.getMessage(channelId, b.id)).toMatchObject({ text: "b <@5>", mentions: b.mentions, threadRootId: 0n, editedAt: 0 });
    expect((await store.getMessages(channelId, [b.id, 12345n, a.id])).map((m) => m.text)).toEqual(["b <@5>", "a"]);
    expect(await store.getMessage(channelId, 12345n)).toBeUndefined();
    expect(await store.getMessage(ids0(), a.id)).toBeUndefined();
  });

  it("keeps replies in their thread, summarised on the root, and out of history unless also sent to the channel", async () => {
    const { owner, channelId } = await channelOf(store);
    const root = message(channelId, owner, "root");
    await store.appendMessage(root);
    const others = [user().id, user().id, user().id, user().id, user().id, user().id];
    const replies: MessageRecord[] = [];
    for (const [i, sender] of [owner, ...others, others[0]!].entries()) {
      const r = reply(root, sender, `r${i}`, i === 2);
      replies.push(r);
      const result = await store.appendMessage(r);
      expect(kinds(result.changes)).toEqual(["posted", "thread_updated"]);
      expect(result.changes[1]).toMatchObject({ messageId: root.id, actorId: sender });
      expect(result.root?.thread?.replyCount).toBe(i + 1);
    }
    const now = await store.getMessage(channelId, root.id);
    expect(now?.thread).toEqual({
      replyCount: 8,
      latestReplyId: replies.at(-1)!.id,
      // Most recent first, without repeats, at most five.
      recentReplierIds: [others[0]!, others[5]!, others[4]!, others[3]!, others[2]!],
    });
    const history = await store.listMessages(channelId, { limit: 50, order: "oldest-first" });
    expect(history.map((m) => m.text)).toEqual(["root", "r2"]);
    expect(history[1]).toMatchObject({ threadRootId: root.id, alsoToChannel: true });
    const page1 = await store.listThreadReplies(channelId, root.id, { limit: 3, order: "oldest-first" });
    expect(page1.map((m) => m.text)).toEqual(["r0", "r1", "r2"]);
    const page2 = await store.listThreadReplies(channelId, root.id, { after: page1.at(-1)!.id, limit: 10, order: "oldest-first" });
    expect(page2.map((m) => m.text)).toEqual(["r3", "r4", "r5", "r6", "r7"]);
    const newest = await store.listThreadReplies(channelId, root.id, { limit: 2, order: "newest-first" });
    expect(newest.map((m) => m.text)).toEqual(["r7", "r6"]);
    await expect(store.appendMessage({ ...message(channelId, owner, "orphan"), threadRootId: 98765n })).rejects.toBeInstanceOf(NotFoundError);
  });

  it("edits the sender's own text, logs it, and refuses others' and deleted messages", async () => {
    const { owner, channelId } = await channelOf(store);
    const m = message(channelId, owner, "first");
    const posted = await store.appendMessage(m);
    const mentions = { userIds: [7n], channel: false, here: true };
    const edited = await store.editMessage({ channelId, id: m.id, senderId: owner, text: "second", mentions, at: 1_700_000_000_123 });
    expect(edited.message).toMatchObject({ id: m.id, text: "second", mentions, editedAt: 1_700_000_000_123 });
    expect(edited.changes).toEqual([
      { channelId, seq: posted.changes[0]!.seq + 1n, kind: "edited", messageId: m.id, actorId: owner, emoji: "", at: 1_700_000_000_123 },
    ]);
    expect((await store.listMessages(channelId, { limit: 5, order: "newest-first" }))[0]?.text).toBe("second");
    expect(await store.historyRevision(channelId)).toBe(edited.changes[0]!.seq);
    await expect(store.editMessage({ channelId, id: m.id, senderId: 999n, text: "x", mentions: NO_ONE, at: 1 })).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.editMessage({ channelId, id: 4242n, senderId: owner, text: "x", mentions: NO_ONE, at: 1 })).rejects.toBeInstanceOf(NotFoundError);
    await store.deleteMessage(channelId, m.id, owner, 2);
    await expect(store.editMessage({ channelId, id: m.id, senderId: owner, text: "x", mentions: NO_ONE, at: 3 })).rejects.toBeInstanceOf(NotFoundError);
  });

  it("applies concurrent edits one after another: every node reads the same text afterwards", async () => {
    const { owner, channelId } = await channelOf(store);
    const m = message(channelId, owner, "v0");
    await store.appendMessage(m);
    const edits = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? store : peer).editMessage({ channelId, id: m.id, senderId: owner, text: `v${i + 1}`, mentions: NO_ONE, at: Date.now() }),
      ),
    );
    // Each edit answers with its own text; one of them is the text now, on every node.
    expect(edits.map((e) => e.message.text)).toEqual(edits.map((_, i) => `v${i + 1}`));
    const final = (await store.getMessage(channelId, m.id))?.text;
    expect(edits.map((e) => e.message.text)).toContain(final);
    expect((await peer.getMessage(channelId, m.id))?.text).toBe(final);
    const log = await allChanges(store, channelId);
    expectDense(log);
    expect(kinds(log)).toEqual(["posted", ...Array(20).fill("edited")]);
  });

  it("deletes: the text is gone, history skips it without breaking pages, and a root with replies stays as a tombstone", async () => {
    const { owner, channelId } = await channelOf(store);
    const posts = Array.from({ length: 10 }, (_, i) => message(channelId, owner, `m${i}`));
    for (const m of posts) await store.appendMessage(m);
    const r1 = reply(posts[5]!, owner, "reply");
    await store.appendMessage(r1);
    for (const i of [2, 3, 5, 7]) {
      const { message: gone, changes } = await store.deleteMessage(channelId, posts[i]!.id, owner, 1_000 + i);
      expect(gone).toMatchObject({ text: "", deletedAt: 1_000 + i, mentions: NO_ONE });
      expect(kinds(changes)).toEqual(["deleted"]);
    }
    await expect(store.deleteMessage(channelId, posts[2]!.id, owner, 2_000)).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.deleteMessage(channelId, 5151n, owner, 2_000)).rejects.toBeInstanceOf(NotFoundError);
    const newest = await store.listMessages(channelId, { limit: 3, order: "newest-first" });
    expect(newest.map((m) => m.text)).toEqual(["m9", "m8", "m6"]);
    const next = await store.listMessages(channelId, { before: newest.at(-1)!.id, limit: 3, order: "newest-first" });
    // m5 is a deleted root with a reply: a tombstone, listed in its place.
    expect(next.map((m) => [m.text, m.deletedAt !== 0, m.thread?.replyCount])).toEqual([
      ["", true, 1],
      ["m4", false, undefined],
      ["m1", false, undefined],
    ]);
    expect(await store.getMessage(channelId, posts[2]!.id)).toMatchObject({ text: "", deletedAt: 1_002 });
    expect(await store.listThreadReplies(channelId, posts[5]!.id, { limit: 5, order: "oldest-first" })).toHaveLength(1);

    // Deleting the reply updates the root; the root, deleted with no replies left, leaves history.
    const gone = await store.deleteMessage(channelId, r1.id, owner, 3_000);
    expect(kinds(gone.changes)).toEqual(["deleted", "thread_updated"]);
    expect((await store.getMessage(channelId, posts[5]!.id))?.thread).toBeUndefined();
    const all = await store.listMessages(channelId, { limit: 50, order: "oldest-first" });
    expect(all.map((m) => m.text)).toEqual(["m0", "m1", "m4", "m6", "m8", "m9"]);
    expect(await store.historyRevision(channelId)).toBe(gone.changes[1]!.seq);
  });

  it("a delete racing a thread reply leaves the root a tombstone with the reply, on every node", async () => {
    const { owner, channelId } = await channelOf(store);
    for (let round = 0; round < 5; round++) {
      const root = message(channelId, owner, `root ${round}`);
      await store.appendMessage(root);
      const r = reply(root, owner, `reply ${round}`);
      await Promise.all([store.deleteMessage(channelId, root.id, owner, Date.now()), peer.appendMessage(r)]);
      for (const s of [store, peer]) {
        const now = await s.getMessage(channelId, root.id);
        expect(now).toMatchObject({ text: "", thread: { replyCount: 1, latestReplyId: r.id } });
        expect(now!.deletedAt).not.toBe(0);
        const history = await s.listMessages(channelId, { after: root.id - 1n, limit: 5, order: "oldest-first" });
        expect(history.map((m) => m.id)).toEqual([root.id]);
      }
    }
  });

  it("counts reactions per emoji, once per user, in the order each emoji was first used", async () => {
    const { owner, channelId } = await channelOf(store);
    const m = message(channelId, owner, "react to me");
    await store.appendMessage(m);
    const [u1, u2, u3, u4] = [user().id, user().id, user().id, user().id];
    let at = 1_700_000_000_000;
    const react = (userId: bigint, emoji: string) => store.addReaction({ channelId, messageId: m.id, userId, emoji, at: ++at }, 50);
    for (const [u, e] of [[u1, "👍"], [u2, "👍"], [u1, ":tada:"], [u3, "👍"], [u4, "👍"]] as const) {
      const r = await react(u, e);
      expect(r.changes).toMatchObject([{ kind: "reaction_added", messageId: m.id, actorId: u, emoji: e }]);
    }
    const again = await react(u2, "👍");
    expect(again.changes).toEqual([]);
    expect(again.message.reactions).toEqual([
      { emoji: "👍", count: 4, userIds: [u1, u2, u3] },
      { emoji: ":tada:", count: 1, userIds: [u1] },
    ]);
    const removed = await store.removeReaction({ channelId, messageId: m.id, userId: u1, emoji: ":tada:", at: 6 });
    expect(kinds(removed.changes)).toEqual(["reaction_removed"]);
    expect(removed.message.reactions).toEqual([{ emoji: "👍", count: 4, userIds: [u1, u2, u3] }]);
    expect((await store.removeReaction({ channelId, messageId: m.id, userId: u1, emoji: ":tada:", at: 7 })).changes).toEqual([]);
    const u1Gone = await store.removeReaction({ channelId, messageId: m.id, userId: u1, emoji: "👍", at: 8 });
    expect(u1Gone.message.reactions).toEqual([{ emoji: "👍", count: 3, userIds: [u2, u3, u4] }]);
    expect(await store.reactionsOfUser(channelId, u2, m.id, m.id)).toEqual([{ messageId: m.id, emoji: "👍" }]);
    expect(await store.reactionsOfUser(channelId, u1, m.id, m.id)).toEqual([]);
    expect((await store.listMessages(channelId, { limit: 1, order: "newest-first" }))[0]?.reactions).toEqual(u1Gone.message.reactions);
    await expect(store.addReaction({ channelId, messageId: 777n, userId: u1, emoji: "👍", at: 9 }, 50)).rejects.toBeInstanceOf(NotFoundError);
  });

  it("refuses the emoji past the limit, and reactions on deleted messages", async () => {
    const { owner, channelId } = await channelOf(store);
    const m = message(channelId, owner, "many");
    await store.appendMessage(m);
    for (let i = 0; i < 5; i++) await store.addReaction({ channelId, messageId: m.id, userId: owner, emoji: `:e${i}:`, at: i }, 5);
    await expect(store.addReaction({ channelId, messageId: m.id, userId: owner, emoji: ":e5:", at: 9 }, 5)).rejects.toBeInstanceOf(LimitExceededError);
    // Another user with an emoji already there is fine.
    const more = await store.addReaction({ channelId, messageId: m.id, userId: 31n, emoji: ":e0:", at: 10 }, 5);
    expect(more.message.reactions[0]).toEqual({ emoji: ":e0:", count: 2, userIds: [owner, 31n] });
    await store.deleteMessage(channelId, m.id, owner, 11);
    expect((await store.getMessage(channelId, m.id))?.reactions).toEqual([]);
    await expect(store.addReaction({ channelId, messageId: m.id, userId: owner, emoji: ":e0:", at: 12 }, 5)).rejects.toBeInstanceOf(NotFoundError);
  });

  it("keeps reaction counts exact under 200 concurrent reactions from two nodes", async () => {
    const { owner, channelId } = await channelOf(store);
    const m = message(channelId, owner, "hot");
    await store.appendMessage(m);
    const users = Array.from({ length: 100 }, () => user().id);
    await Promise.all(
      users.flatMap((userId, i) =>
        ["🔥", ":100:"].map((emoji, j) => ((i + j) % 2 === 0 ? store : peer).addReaction({ channelId, messageId: m.id, userId, emoji, at: Date.now() }, 50)),
      ),
    );
    // Half of them again, and a few removals, concurrently.
    await Promise.all([
      ...users.slice(0, 50).map((userId, i) => (i % 2 ? store : peer).addReaction({ channelId, messageId: m.id, userId, emoji: "🔥", at: Date.now() }, 50)),
      ...users.slice(0, 10).map((userId, i) => (i % 2 ? peer : store).removeReaction({ channelId, messageId: m.id, userId, emoji: ":100:", at: Date.now() })),
    ]);
    for (const s of [store, peer]) {
      const counts = (await s.getMessage(channelId, m.id))!.reactions.map((r) => [r.emoji, r.count]);
      expect(new Map(counts as Array<[string, number]>)).toEqual(new Map([["🔥", 100], [":100:", 90]]));
    }
    const log = await allChanges(store, channelId);
    expectDense(log);
    expect(log.filter((c) => c.kind === "reaction_added")).toHaveLength(200);
    expect(log.filter((c) => c.kind === "reaction_removed")).toHaveLength(10);
  });

  it("pins and unpins once, lists pins newest first, and stops at the limit", async () => {
    const { owner, channelId } = await channelOf(store);
    const posts = Array.from({ length: 4 }, (_, i) => message(channelId, owner, `p${i}`));
    for (const m of posts) await store.appendMessage(m);
    for (const [i, m] of posts.slice(0, 3).entries()) {
      const pinned = await store.pinMessage(channelId, m.id, owner, 100 + i, 3);
      expect(pinned.message).toMatchObject({ pinnedAt: 100 + i, pinnedBy: owner });
      expect(kinds(pinned.changes)).toEqual(["pinned"]);
    }
    expect((await store.pinMessage(channelId, posts[0]!.id, owner, 200, 3)).changes).toEqual([]);
    await expect(store.pinMessage(channelId, posts[3]!.id, owner, 201, 3)).rejects.toBeInstanceOf(LimitExceededError);
    expect((await store.listPins(channelId)).map((m) => m.text)).toEqual(["p2", "p1", "p0"]);
    const unpinned = await store.unpinMessage(channelId, posts[1]!.id, owner, 300);
    expect(kinds(unpinned.changes)).toEqual(["unpinned"]);
    expect(unpinned.message).toMatchObject({ pinnedAt: 0, pinnedBy: 0n });
    expect((await store.unpinMessage(channelId, posts[1]!.id, owner, 301)).changes).toEqual([]);
    // Deleting a pinned message unpins it first.
    const gone = await store.deleteMessage(channelId, posts[2]!.id, owner, 302);
    expect(kinds(gone.changes)).toEqual(["unpinned", "deleted"]);
    expect((await store.listPins(channelId)).map((m) => m.text)).toEqual(["p0"]);
    await expect(store.pinMessage(channelId, posts[2]!.id, owner, 303, 3)).rejects.toBeInstanceOf(NotFoundError);
    const log = await allChanges(store, channelId);
    expectDense(log);
  });

  it("moves the history revision only for changes that alter pages already read", async () => {
    const { owner, channelId } = await channelOf(store);
    expect(await store.historyRevision(channelId)).toBe(0n);
    const m = message(channelId, owner, "x");
    await store.appendMessage(m);
    expect(await store.historyRevision(channelId)).toBe(0n);
    const r = await peer.addReaction({ channelId, messageId: m.id, userId: owner, emoji: "👀", at: 1 }, 50);
    expect(await store.historyRevision(channelId)).toBe(r.changes[0]!.seq);
    const t = await store.appendMessage(reply(m, owner, "t"));
    expect(await peer.historyRevision(channelId)).toBe(t.changes[1]!.seq);
  });
}

/** A channel id nobody uses. */
function ids0(): bigint {
  return 4_000_000_000_000_000_000n + BigInt(Math.floor(Math.random() * 1e9));
}
