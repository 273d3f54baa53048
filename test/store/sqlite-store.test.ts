import Database from "better-sqlite3";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createSqliteStore, SchemaTooNewError } from "../../store/sqlite/sqlite-store.js";
import { MIGRATIONS } from "../../store/sqlite/migrations.js";
import { newStoredMessage, NO_MENTIONS } from "../../store/store.js";
import { describeStoreContract, group, membership, message, user } from "./store-contract.js";

const dir = mkdtempSync(path.join(tmpdir(), "chat-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeStoreContract("sqlite", {
  async create() {
    return createSqliteStore({ file: path.join(dir, "contract.sqlite") });
  },
  // A second connection to the same file: transactions of the two interleave as two processes' would.
  async peer() {
    return createSqliteStore({ file: path.join(dir, "contract.sqlite") });
  },
});

describe("sqlite store", () => {
  it("checkpoints the WAL on a worker thread, never inside a commit on the event loop", async () => {
    const fill = async (store: ReturnType<typeof createSqliteStore>) => {
      const u = user();
      await store.createUser(u);
      const c = group(u.id);
      await store.createGroupChannel(c, membership(c.id, u.id, "owner"));
      // ~8 MiB of messages: twice SQLite's default automatic checkpoint (1,000 pages).
      for (let b = 0; b < 20; b++) {
        await Promise.all(Array.from({ length: 200 }, (_, i) => store.appendMessage(message(c.id, u.id, `${"x".repeat(2000)} ${b}/${i}`))));
      }
    };
    const idle = path.join(dir, "checkpoint-idle.sqlite");
    const withoutWorker = createSqliteStore({ file: idle, checkpointIntervalMs: 3_600_000 });
    const idleBefore = statSync(idle).size;
    await fill(withoutWorker);
    expect(statSync(idle).size).toBe(idleBefore);
    await withoutWorker.close();

    const busy = path.join(dir, "checkpoint-busy.sqlite");
    const withWorker = createSqliteStore({ file: busy, checkpointIntervalMs: 50 });
    const busyBefore = statSync(busy).size;
    await fill(withWorker);
    const deadline = Date.now() + 5000;
    while (statSync(busy).size < busyBefore + 4_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(statSync(busy).size).toBeGreaterThan(busyBefore + 4_000_000);
    await withWorker.close();
  });

  it("keeps what it acknowledged across a reopen", async () => {
    const file = path.join(dir, "reopen.sqlite");
    const store = createSqliteStore({ file });
    const u = user();
    await store.createUser(u);
    const c = group(u.id);
    await store.createGroupChannel(c, membership(c.id, u.id, "owner"));
    const acked = await Promise.all(Array.from({ length: 100 }, (_, i) => store.appendMessage(message(c.id, u.id, `m${i}`))));
    await store.close();

    const reopened = createSqliteStore({ file });
    const page = await reopened.listMessages(c.id, { limit: 200, order: "oldest-first" });
    expect(page.map((m) => m.id)).toEqual(acked.map((a) => a.message.id));
    expect(await reopened.getUser(u.id)).toEqual(u);
    await reopened.close();
  });

  it("group-commits concurrent appends in few transactions", async () => {
    const sizes: number[] = [];
    const store = createSqliteStore({ file: path.join(dir, "batch.sqlite"), onBatch: (n) => sizes.push(n) });
    const u = user();
    const c = group(u.id);
    await store.createGroupChannel(c, membership(c.id, u.id, "owner"));
    await Promise.all(Array.from({ length: 300 }, (_, i) => store.appendMessage(message(c.id, u.id, `m${i}`))));
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(300);
    expect(sizes.length).toBeLessThan(10);
    await store.close();
  });

  it("records its schema version and refuses a database from a newer program", async () => {
    const file = path.join(dir, "version.sqlite");
    await createSqliteStore({ file }).close();
    const db = new Database(file);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => createSqliteStore({ file })).toThrow(SchemaTooNewError);
  });

  it("opens a database of schema version 1: its messages read as never changed, and change like new ones", async () => {
    const file = path.join(dir, "v1.sqlite");
    const db = new Database(file);
    db.exec(MIGRATIONS[0]!);
    db.pragma("user_version = 1");
    const u = user();
    const c = group(u.id);
    db.prepare("INSERT INTO channels (id, kind, name, visibility, delivery, topic, created_by, created_at) VALUES (?, 'group', ?, 'public', 'persisted', '', ?, 0)").run(
      c.id,
      c.name,
      u.id,
    );
    const old = message(c.id, u.id, "from before");
    db.prepare("INSERT INTO messages (channel_id, id, sender_id, text) VALUES (?, ?, ?, ?)").run(c.id, old.id, u.id, old.text);
    db.close();
    const store = createSqliteStore({ file });
    expect(await store.listMessages(c.id, { limit: 5, order: "newest-first" })).toEqual([newStoredMessage(old)]);
    const posted = await store.appendMessage(message(c.id, u.id, "after"));
    expect(posted.changes.map((x) => x.seq)).toEqual([1n]);
    const edited = await store.editMessage({ channelId: c.id, id: old.id, senderId: u.id, text: "edited", mentions: NO_MENTIONS, at: 5 });
    expect(edited.changes.map((x) => [x.seq, x.kind])).toEqual([[2n, "edited"]]);
    expect(await store.historyRevision(c.id)).toBe(2n);
    await store.close();
  });

  it("rejects appends after close instead of losing them", async () => {
    const store = createSqliteStore({ file: path.join(dir, "closed.sqlite") });
    const u = user();
    const pending = store.appendMessage(message(1n, u.id, "before close"));
    await store.close();
    await expect(pending).resolves.toMatchObject({ duplicate: false });
    await expect(store.appendMessage(message(1n, u.id, "after close"))).rejects.toThrow(/closed/);
  });
});
