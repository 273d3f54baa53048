/**
 * A standalone gateway's reads from the API (realtime/event-backend.ts,
 * createRemoteApi) against a fake ChannelService: bounded concurrency during
 * a connect storm, a user's queued read shared by that user's sockets, reads
 * of sockets that closed while waiting skipped, pages followed.
 */
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChannelService, ListMyChannelsResponseSchema } from "../../gen/chat/v1/channel_pb.js";
import { createRemoteApi } from "../../realtime/remote-api.js";
import { ON_BEHALF_OF_HEADER } from "../../chat/auth.js";

/** Channels of user n: n * 1000 + 1 .. n * 1000 + (n % 3 + 1); user 7 has 1,200 (three pages). */
const channelsOfUser = (n: bigint): bigint[] =>
  Array.from({ length: n === 7n ? 1200 : Number(n % 3n) + 1 }, (_, i) => n * 1000n + BigInt(i) + 1n);

let server: http2.Http2Server;
const sessions = new Set<http2.ServerHttp2Session>();
let url: string;
let inFlight = 0;
let maxInFlight = 0;
const calls: bigint[] = [];
/** Answers wait for this, so that a test controls when the API "finishes". */
let gate: Promise<void> = Promise.resolve();

beforeAll(async () => {
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(ChannelService, {
        async listMyChannels(req, ctx) {
          const user = BigInt(ctx.requestHeader.get(ON_BEHALF_OF_HEADER) ?? "0");
          calls.push(user);
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          try {
            await gate;
            await new Promise((r) => setTimeout(r, 1));
            const all = channelsOfUser(user);
            const from = req.pageToken === "" ? 0 : Number(req.pageToken);
            const to = Math.min(all.length, from + req.pageSize);
            return create(ListMyChannelsResponseSchema, {
              channels: all.slice(from, to).map((id) => ({ channel: { id } })),
              nextPageToken: to < all.length ? String(to) : "",
            });
          } finally {
            inFlight--;
          }
        },
      }),
  });
  server = http2.createServer(handler);
  server.on("session", (s) => sessions.add(s));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const s of sessions) s.destroy();
  await closed;
});

const user = (n: number) => ({ kind: "user" as const, userId: BigInt(n) });

describe("a standalone gateway's start-up reads", () => {
  it("keeps at most maxConcurrentReads in flight and shares a user's queued read between that user's sockets", async () => {
    const remote = createRemoteApi(url, "admin", { maxConcurrentReads: 4 });
    calls.length = 0;
    maxInFlight = 0;
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    // 100 users, two sockets each, starting together (a reconnect storm).
    const reads = Array.from({ length: 200 }, (_, i) => remote.backend.channelsOf(user(1 + (i >> 1))));
    try {
      // The first four arrive (however long the connection takes on a busy machine), and no fifth while they wait.
      for (const until = Date.now() + 10_000; calls.length < 4 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50));
      expect(calls.length).toBe(4);
    } finally {
      open();
    }
    const results = await Promise.all(reads);
    results.forEach((ids, i) => expect(ids).toEqual(channelsOfUser(BigInt(1 + (i >> 1)))));
    expect(maxInFlight).toBeLessThanOrEqual(4);
    // Four reads went out at once; every other user's second socket joined its first's queued read.
    expect(calls.length).toBeLessThanOrEqual(104);
    expect(new Set(calls).size).toBe(100);
  });

  it("reads again for a socket that starts after its user's read went out", async () => {
    const remote = createRemoteApi(url, "admin", { maxConcurrentReads: 4 });
    calls.length = 0;
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const first = remote.backend.channelsOf(user(5));
    await new Promise((r) => setTimeout(r, 20));
    const second = remote.backend.channelsOf(user(5));
    open();
    expect(await first).toEqual(channelsOfUser(5n));
    expect(await second).toEqual(channelsOfUser(5n));
    expect(calls).toEqual([5n, 5n]);
  });

  it("skips a queued read once every socket that wanted it closed", async () => {
    const remote = createRemoteApi(url, "admin", { maxConcurrentReads: 1 });
    calls.length = 0;
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const busy = remote.backend.channelsOf(user(1));
    let closedA = false;
    let closedB = false;
    const gone = [remote.backend.channelsOf(user(2), () => !closedA), remote.backend.channelsOf(user(2), () => !closedB)];
    let closedC = false;
    const half = [remote.backend.channelsOf(user(3), () => !closedC), remote.backend.channelsOf(user(3), () => true)];
    closedA = closedB = closedC = true;
    open();
    await busy;
    await Promise.all(gone);
    // Still wanted by one of its two sockets: read.
    for (const ids of await Promise.all(half)) expect(ids).toEqual(channelsOfUser(3n));
    expect(calls).toEqual([1n, 3n]);
  });

  it("fails a read that does not answer in time, and frees its slot", async () => {
    const remote = createRemoteApi(url, "admin", { maxConcurrentReads: 1, readTimeoutMs: 200 });
    calls.length = 0;
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const stuck = remote.backend.channelsOf(user(4));
    const next = remote.backend.channelsOf(user(5));
    await expect(stuck).rejects.toMatchObject({ code: Code.DeadlineExceeded });
    open();
    expect(await next).toEqual(channelsOfUser(5n));
  });

  it("follows pages under one slot", async () => {
    const remote = createRemoteApi(url, "admin", { maxConcurrentReads: 1 });
    calls.length = 0;
    gate = Promise.resolve();
    const [many, few] = await Promise.all([remote.backend.channelsOf(user(7)), remote.backend.channelsOf(user(8))]);
    expect(many).toEqual(channelsOfUser(7n));
    expect(few).toEqual(channelsOfUser(8n));
    expect(calls).toEqual([7n, 7n, 7n, 8n]);
  });
});
