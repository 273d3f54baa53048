import { Code, ConnectError } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { createChannelAccess } from "../../chat/channels/access.js";
import { createSqliteStore } from "../../store/sqlite/sqlite-store.js";
import type { ChatStore } from "../../store/store.js";
import { group, membership, user } from "../store/store-contract.js";

const dir = mkdtempSync(path.join(tmpdir(), "chat-access-"));
const sqlite = createSqliteStore({ file: path.join(dir, "access.sqlite") });
afterAll(async () => {
  await sqlite.close();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The real store, with its membership reads counted and slowed by `delayMs`
 * (a remote store's round trip); while `counts.held` is set, reads do not
 * answer until it is resolved.
 */
function countingStore(delayMs: number) {
  const counts: { reads: number; held?: Promise<void> } = { reads: 0 };
  const getMembership: ChatStore["getMembership"] = async (channelId, userId) => {
    counts.reads++;
    const found = await sqlite.getMembership(channelId, userId);
    await sleep(delayMs);
    await counts.held;
    return found;
  };
  const store = new Proxy(sqlite, {
    get: (target, prop) => (prop === "getMembership" ? getMembership : Reflect.get(target, prop)),
  });
  return { store, counts };
}

async function aMember() {
  const u = user();
  await sqlite.createUser(u);
  const c = group(u.id);
  await sqlite.createGroupChannel(c, membership(c.id, u.id, "owner"));
  return { caller: { kind: "user" as const, userId: u.id }, channelId: c.id };
}

async function codeOf(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("channel access: remembered membership checks", () => {
  let m: Awaited<ReturnType<typeof aMember>>;
  beforeEach(async () => {
    m = await aMember();
  });

  it("re-reads a membership in use in the background, so a steady sender never waits for the store", async () => {
    const { store, counts } = countingStore(0);
    const access = createChannelAccess({ store }, { memberCheckTtlMs: 4000 });
    await access.isMember(m.caller, m.channelId);
    expect(counts.reads).toBe(1);
    // Well past half its life, with the store not answering: still answered
    // from memory, and one read (not one per check) starts behind it.
    await sleep(3300);
    let release!: () => void;
    counts.held = new Promise<void>((r) => (release = r));
    await access.isMember(m.caller, m.channelId);
    await access.isMember(m.caller, m.channelId);
    expect(counts.reads).toBe(2);
    release();
    counts.held = undefined;
    // Past the first answer's TTL: the refreshed answer is used, no read waited for.
    await sleep(1000);
    counts.held = new Promise<void>((r) => (release = r));
    await access.isMember(m.caller, m.channelId);
    expect(counts.reads).toBe(2);
    release();
  });

  it("never keeps an answer past the TTL counted from the start of its read", async () => {
    const { store, counts } = countingStore(0);
    const access = createChannelAccess({ store }, { memberCheckTtlMs: 150 });
    await access.isMember(m.caller, m.channelId);
    // Unused for longer than the TTL: the next check reads again and waits for it.
    await sleep(200);
    await access.isMember(m.caller, m.channelId);
    expect(counts.reads).toBe(2);
  });

  it("drops the answer when the background read finds the membership gone", async () => {
    const { store } = countingStore(10);
    const access = createChannelAccess({ store }, { memberCheckTtlMs: 2000 });
    await access.isMember(m.caller, m.channelId);
    // Removed through another node: this one hears of it only from the store.
    await sqlite.removeMembership(m.channelId, m.caller.userId);
    await sleep(1600);
    await codeOf(access.isMember(m.caller, m.channelId)); // still remembered; starts the re-read
    await sleep(60);
    expect(await codeOf(access.isMember(m.caller, m.channelId))).toBe(Code.PermissionDenied);
  });

  it("does not let a background read that began before a leave bring the membership back", async () => {
    const { store, counts } = countingStore(80);
    const access = createChannelAccess({ store }, { memberCheckTtlMs: 2000 });
    await access.isMember(m.caller, m.channelId);
    await sleep(1600);
    await access.isMember(m.caller, m.channelId); // the re-read starts and will find the membership
    await sqlite.removeMembership(m.channelId, m.caller.userId);
    access.forget(m.channelId, m.caller.userId); // the leave, through this node
    await sleep(120); // the re-read has answered "member" by now
    expect(counts.reads).toBe(2);
    expect(await codeOf(access.isMember(m.caller, m.channelId))).toBe(Code.PermissionDenied);
  });
});
