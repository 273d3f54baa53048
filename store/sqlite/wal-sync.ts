/**
 * Durability of the embedded store without blocking the event loop.
 *
 * SQLite runs in WAL mode with synchronous=NORMAL: a commit writes its WAL
 * frames (write(2), into the page cache) and returns without fsync. Before any
 * write is acknowledged, durable() fdatasyncs the WAL file on libuv's thread
 * pool. That gives the guarantee of synchronous=FULL (frames of every commit
 * made before the sync started are on disk; recovery replays them), while the
 * main thread keeps serving during the sync, and concurrent waiters share one
 * fdatasync (group commit at the disk).
 *
 * Checkpoints still fsync inside SQLite, as synchronous=NORMAL does, so frames
 * are never checkpointed before they are on disk.
 */
import { closeSync, fdatasync, fstatSync, fsyncSync, openSync, statSync } from "node:fs";
import path from "node:path";

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class WalSync {
  private fd: number | undefined;
  private syncing = false;
  private waiting: Waiter[] = [];

  /** @param databaseFile the SQLite file; undefined for in-memory databases (nothing to sync). */
  constructor(private readonly databaseFile: string | undefined) {
    if (databaseFile) {
      // The database and WAL files' directory entries must be durable too.
      const dir = openSync(path.dirname(databaseFile), "r");
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    }
  }

  /** Resolves once every commit made before this call is on disk. */
  durable(): Promise<void> {
    if (!this.databaseFile) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.startSync();
    });
  }

  /** Closes the file handle; call after the last durable() has settled. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private startSync(): void {
    if (this.syncing || this.waiting.length === 0) return;
    const waiters = this.waiting;
    this.waiting = [];
    let fd: number | undefined;
    try {
      fd = this.walFd();
    } catch (err) {
      for (const w of waiters) w.reject(err);
      return;
    }
    if (fd === undefined) {
      // No WAL file: nothing was written since the last checkpoint removed it.
      for (const w of waiters) w.resolve();
      return;
    }
    this.syncing = true;
    fdatasync(fd, (err) => {
      this.syncing = false;
      for (const w of waiters) (err ? w.reject(err) : w.resolve());
      this.startSync();
    });
  }

  /** The WAL file's descriptor, reopened if SQLite replaced the file; undefined if there is none. */
  private walFd(): number | undefined {
    const walFile = `${this.databaseFile}-wal`;
    const current = statSync(walFile, { throwIfNoEntry: false });
    if (!current) return undefined;
    if (this.fd !== undefined && fstatSync(this.fd).ino === current.ino) return this.fd;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = openSync(walFile, "r+");
    return this.fd;
  }
}
