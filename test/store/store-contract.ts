/**
 * Behaviour every ChatStore must have. Each implementation's test file calls
 * describeStoreContract with a factory; the cases use fresh ids and names so
 * they also hold on a shared, long-lived database.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdGenerator } from "../../core/ids.js";
import {
  AlreadyExistsError,
  NotFoundError,
  type ChannelRecord,
  type ChatStore,
  type MembershipRecord,
  type MessageRecord,
  newStoredMessage,
} from "../../store/store.js";
import { describeConversationContract } from "./conversation-contract.js";

export interface StoreFactory {
  create(): Promise<ChatStore>;
  /**
   * Another store on the same data, as a second API node would open it: the
   * contract's concurrency cases run half their calls through it.
   */
  peer(): Promise<ChatStore>;
  /** Releases whatever create() set up (after the store is closed). */
  cleanup?(): Promise<void>;
}

const ids = createIdGenerator({ nodeId: 900 + (process.pid % 100) });
const unique = () => ids.next().toString(36);

export function user(overrides: Partial<{ id: bigint; name: string; email: string }> = {}) {
  const id = overrides.id ?? ids.next();
  return { id, name: overrides.name ?? `user ${id}`, email: overrides.email ?? `u${id}@example.com`, createdAt: Date.now() };
}

export function group(createdBy: bigint, overrides: Partial<ChannelRecord> = {}): ChannelRecord {
  return {
    id: ids.next(),
    kind: "group",
    name: `ch-${unique()}`,
    visibility: "public",
    delivery: "persisted",
    topic: "",
    createdBy,
    createdAt: Date.now(),
    directUserIds: [],
    ...overrides,
  };
}

export function membership(channelId: bigint, userId: bigint, role: MembershipRecord["role"] = "member"): MembershipRecord {
  return { channelId, userId, role, isStar: false, isFavorite: false, mute: false, preferences: {}, joinedAt: Date.now() };
}

export function message(channelId: bigint, senderId: bigint, text: string, clientMsgId = ""): MessageRecord {
  return { id: ids.next(), channelId, senderId, text, clientMsgId };
}

export function describeStoreContract(name: string, factory: StoreFactory): void {
  describe(`ChatStore contract: ${name}`, () => {
    let store: ChatStore;
    beforeAll(async () => {
      store = await factory.create();
    });
    afterAll(async () => {
      await store.close();
      await factory.cleanup?.();
    });

    it("creates users, keeps emails unique and lists users in id order", async () => {
      const a = user();
      const b = user();
      await store.createUser(a);
      await store.createUser(b);
      expect(await store.getUser(a.id)).toEqual(a);
      expect(await store.getUser(ids.next())).toBeUndefined();
      await expect(store.createUser(user({ email: a.email }))).rejects.toBeInstanceOf(AlreadyExistsError);
      const listed = await store.listUsers(a.id - 1n, 2);
      expect(listed.map((u) => u.id)).toEqual([a.id, b.id]);
    });

    it("creates group channels with their owner and keeps group names unique", async () => {
      const owner = user();
      await store.createUser(owner);
      const channel = group(owner.id, { topic: "hello", visibility: "private", delivery: "fast" });
      await store.createGroupChannel(channel, membership(channel.id, owner.id, "owner"));
      expect(await store.getChannel(channel.id)).toEqual(channel);
      expect((await store.getMembership(channel.id, owner.id))?.role).toBe("owner");
      await expect(
        store.createGroupChannel(group(owner.id, { name: channel.name }), membership(ids.next(), owner.id, "owner")),
      ).rejects.toBeInstanceOf(AlreadyExistsError);
    });

    it("updates a channel's name and topic, keeping names unique", async () => {
      const owner = user();
      const a = group(owner.id);
      const b = group(owner.id);
      await store.createGroupChannel(a, membership(a.id, owner.id, "owner"));
      await store.createGroupChannel(b, membership(b.id, owner.id, "owner"));
      const renamed = await store.updateChannel(a.id, { name: `${a.name}-x` });
      expect(renamed).toEqual({ ...a, name: `${a.name}-x` });
      expect(await store.updateChannel(a.id, { topic: "new topic" })).toEqual({ ...a, name: `${a.name}-x`, topic: "new topic" });
      await expect(store.updateChannel(a.id, { name: b.name })).rejects.toBeInstanceOf(AlreadyExistsError);
      await expect(store.updateChannel(ids.next(), { topic: "x" })).rejects.toBeInstanceOf(NotFoundError);
      // The old name is free again.
      const c = group(owner.id, { name: a.name });
      await store.createGroupChannel(c, membership(c.id, owner.id, "owner"));
    });

    it("adds, lists, updates and removes memberships", async () => {
      const owner = user();
      const channel = group(owner.id);
      await store.createGroupChannel(channel, membership(channel.id, owner.id, "owner"));
      const others = [user(), user(), user()];
      for (const u of others) {
        const added = await store.addMembership(membership(channel.id, u.id));
        expect(added.created).toBe(true);
      }
      const again = await store.addMembership({ ...membership(channel.id, others[0]!.id), isStar: true });
      expect(again.created).toBe(false);
      expect(again.membership.isStar).toBe(false);

      const page1 = await store.listMembers(channel.id, 0n, 2);
      const page2 = await store.listMembers(channel.id, page1.at(-1)!.userId, 10);
      const all = [...page1, ...page2].map((m) => m.userId);
      expect(all).toEqual([owner.id, ...others.map((u) => u.id)].sort((x, y) => (x < y ? -1 : 1)));

      const updated = await store.updateMembership(channel.id, others[1]!.id, {
        isStar: true,
        mute: true,
        preferences: { theme: "dark", sound: "off" },
      });
      expect(updated).toMatchObject({ isStar: true, mute: true, isFavorite: false, preferences: { theme: "dark", sound: "off" } });
      const merged = await store.updateMembership(channel.id, others[1]!.id, {
        isFavorite: true,
        preferences: { sound: null, lang: "fr" },
      });
      expect(merged).toMatchObject({ isStar: true, mute: true, isFavorite: true, preferences: { theme: "dark", lang: "fr" } });
      expect(await store.getMembership(channel.id, others[1]!.id)).toEqual(merged);
      expect(await store.updateMembership(channel.id, ids.next(), { mute: true })).toBeUndefined();

      expect(await store.removeMembership(channel.id, others[2]!.id)).toBe(true);
      expect(await store.removeMembership(channel.id, others[2]!.id)).toBe(false);
      expect(await store.getMembership(channel.id, others[2]!.id)).toBeUndefined();
    });

    it("lists a user's channels with their membership, paged by channel id", async () => {
      const u = user();
      const created: ChannelRecord[] = [];
      for (let i = 0; i < 5; i++) {
        const c = group(u.id);
        await store.createGroupChannel(c, membership(c.id, u.id, "owner"));
        created.push(c);
      }
      await store.updateMembership(created[2]!.id, u.id, { isFavorite: true });
      const first = await store.listChannelsOfUser(u.id, 0n, 3);
      const rest = await store.listChannelsOfUser(u.id, first.at(-1)!.channel.id, 10);
      const rows = [...first, ...rest];
      expect(rows.map((r) => r.channel)).toEqual(created);
      expect(rows[2]!.membership.isFavorite).toBe(true);
      expect(rows.every((r) => r.membership.userId === u.id)).toBe(true);
    });

    it("opens exactly one direct channel per pair, also concurrently and from either side", async () => {
      const a = user();
      const b = user();
      const attempts = Array.from({ length: 8 }, (_, i) => {
        const [first, second] = i % 2 === 0 ? [a, b] : [b, a];
        const low = first.id < second.id ? first.id : second.id;
        const high = first.id < second.id ? second.id : first.id;
        const channel: ChannelRecord = {
          ...group(first.id),
          kind: "direct",
          name: "",
          visibility: "private",
          directUserIds: [low, high],
        };
        return store.openDirectChannel(channel, [membership(channel.id, low), membership(channel.id, high)]);
      });
      const results = await Promise.all(attempts);
      const channelIds = new Set(results.map((r) => r.channel.id));
      expect(channelIds.size).toBe(1);
      expect(results.filter((r) => r.created).length).toBe(1);
      const [channelId] = channelIds;
      const members = await store.listMembers(channelId!, 0n, 10);
      expect(members.map((m) => m.userId).sort()).toEqual([a.id, b.id].sort());
      expect((await store.getChannel(channelId!))?.directUserIds).toEqual(a.id < b.id ? [a.id, b.id] : [b.id, a.id]);
    });

    it("appends messages durably and pages them in both orders without gaps", async () => {
      const u = user();
      const c = group(u.id);
      await store.createGroupChannel(c, membership(c.id, u.id, "owner"));
      const other = group(u.id);
      await store.createGroupChannel(other, membership(other.id, u.id, "owner"));
      const written: MessageRecord[] = [];
      await Promise.all(
        Array.from({ length: 25 }, (_, i) => {
          const m = message(c.id, u.id, `m${i}`);
          written.push(m);
          return store.appendMessage(m);
        }),
      );
      await store.appendMessage(message(other.id, u.id, "elsewhere"));

      const newest = await store.listMessages(c.id, { limit: 10, order: "newest-first" });
      expect(newest.map((m) => m.text)).toEqual(written.slice(-10).reverse().map((m) => m.text));
      const older = await store.listMessages(c.id, { before: newest.at(-1)!.id, limit: 100, order: "newest-first" });
      expect(older.map((m) => m.id)).toEqual(written.slice(0, 15).reverse().map((m) => m.id));

      const oldest = await store.listMessages(c.id, { limit: 5, order: "oldest-first" });
      expect(oldest).toEqual(written.slice(0, 5).map(newStoredMessage));
      const between = await store.listMessages(c.id, {
        after: written[4]!.id,
        before: written[10]!.id,
        limit: 100,
        order: "oldest-first",
      });
      expect(between.map((m) => m.text)).toEqual(["m5", "m6", "m7", "m8", "m9"]);
      expect(await store.listMessages(ids.next(), { limit: 10, order: "newest-first" })).toEqual([]);
    });

    it("stores a client message id once per channel and sender, also for concurrent duplicates", async () => {
      const u = user();
      const v = user();
      const c = group(u.id);
      await store.createGroupChannel(c, membership(c.id, u.id, "owner"));
      const key = `k-${unique()}`;
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) => store.appendMessage(message(c.id, u.id, `try ${i}`, key))),
      );
      const originals = new Set(results.map((r) => r.message.id));
      expect(originals.size).toBe(1);
      expect(results.filter((r) => !r.duplicate).length).toBe(1);
      // The same key from another sender is another message.
      const fromV = await store.appendMessage(message(c.id, v.id, "v", key));
      expect(fromV.duplicate).toBe(false);
      const found = await store.findMessageByClientMsgId(c.id, u.id, key);
      expect(found?.id).toBe([...originals][0]);
      expect(await store.findMessageByClientMsgId(c.id, u.id, "missing")).toBeUndefined();
      const all = await store.listMessages(c.id, { limit: 100, order: "oldest-first" });
      expect(all.length).toBe(2);
    });

    it("treats appending the same record again as done (a write-behind log redelivers)", async () => {
      const u = user();
      const c = group(u.id);
      await store.createGroupChannel(c, membership(c.id, u.id, "owner"));
      const plain = message(c.id, u.id, "plain");
      const keyed = message(c.id, u.id, "keyed", `k-${unique()}`);
      for (const m of [plain, keyed]) {
        const first = await store.appendMessage(m);
        expect(first).toMatchObject({ message: newStoredMessage(m), duplicate: false });
        expect(first.changes.map((x) => x.kind)).toEqual(["posted"]);
        // The same changes as the first time: nothing is logged twice.
        expect(await store.appendMessage(m)).toEqual(first);
      }
      // A different message with the same key is still a duplicate of the first.
      const retry = await store.appendMessage(message(c.id, u.id, "retry", keyed.clientMsgId));
      expect(retry).toEqual({ message: newStoredMessage(keyed), duplicate: true, changes: [] });
      const all = await store.listMessages(c.id, { limit: 10, order: "oldest-first" });
      expect(all).toEqual([plain, keyed].map(newStoredMessage));
      const log = await store.listChanges(c.id, 0n, 10);
      expect(log.changes.map((x) => [x.seq, x.kind, x.messageId])).toEqual([
        [1n, "posted", plain.id],
        [2n, "posted", keyed.id],
      ]);
    });

    it("keeps two messages of the same millisecond apart", async () => {
      const u = user();
      const c = group(u.id);
      await store.createGroupChannel(c, membership(c.id, u.id, "owner"));
      const same = createIdGenerator({ nodeId: 3, now: () => 1_800_000_000_000 });
      const m1 = { ...message(c.id, u.id, "one"), id: same.next() };
      const m2 = { ...message(c.id, u.id, "two"), id: same.next() };
      await Promise.all([store.appendMessage(m1), store.appendMessage(m2)]);
      const page = await store.listMessages(c.id, { limit: 10, order: "oldest-first" });
      expect(page.map((m) => m.text)).toEqual(["one", "two"]);
    });

    it("round-trips text exactly, including non-ASCII and long text", async () => {
      const u = user();
      const c = group(u.id);
      await store.createGroupChannel(c, membership(c.id, u.id, "owner"));
      const texts = ["héllo 👋🏽 世界", "line1\nline2\ttab", "x".repeat(40_000), "'; DROP TABLE messages; --"];
      for (const t of texts) await store.appendMessage(message(c.id, u.id, t));
      const page = await store.listMessages(c.id, { limit: 10, order: "oldest-first" });
      expect(page.map((m) => m.text)).toEqual(texts);
    });

    describeConversationContract(() => ({ store, peer: factory.peer }));
  });
}
