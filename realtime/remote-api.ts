/**
 * The API as a gateway in another process reaches it: Connect calls with the
 * admin credential acting for each user (the chat-on-behalf-of header), for
 * a session's reads and a socket's posts. It bounds how many reads are in
 * flight at once: a burst of sockets (a reconnect storm) waits in a queue of
 * small closures rather than in thousands of concurrent HTTP/2 streams,
 * whose buffers would leave the gateway's memory fragmented long after they
 * are freed.
 */
import pLimit from "p-limit";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ON_BEHALF_OF_HEADER, type UserPrincipal } from "../chat/auth.js";
import type { MessageService } from "../chat/messages/message-service.js";
import { ChannelService as ChannelServiceDesc } from "../gen/chat/v1/channel_pb.js";
import { EventService as EventServiceDesc } from "../gen/chat/v1/event_service_pb.js";
import { MessageService as MessageServiceDesc, type PostMessageResponse } from "../gen/chat/v1/message_pb.js";
import { createEventBackend, type EventBackend } from "./event-backend.js";

export interface RemoteApi {
  backend: EventBackend;
  /** Posts for a user through the API; onQueued runs once the API answered (keeps a socket's posts in order). */
  messages: Pick<MessageService, "postMessage">;
}

export interface RemoteApiOptions {
  /**
   * Most reads (a socket's channels at start, resume pages) in flight to the
   * API at once; the rest wait in order. A reconnect storm opens sockets far
   * faster than the API answers: unbounded, every waiting socket would hold
   * an HTTP/2 stream, its buffers and its call state at the same moment.
   */
  maxConcurrentReads?: number;
  /**
   * How long one read may take before it fails (the socket that waited for
   * it is closed with 1011 and reconnects): a read that never answers would
   * otherwise hold its slot for good.
   */
  readTimeoutMs?: number;
}

/** Reads in flight to the API from one gateway process, by default. */
export const MAX_CONCURRENT_READS = 32;
export const READ_TIMEOUT_MS = 30_000;

/** For a gateway in another process: see the top of this file. */
export function createRemoteApi(apiUrl: string, adminToken: string, options: RemoteApiOptions = {}): RemoteApi {
  const transport = createConnectTransport({ baseUrl: apiUrl, httpVersion: "2", useBinaryFormat: true });
  const channels: Client<typeof ChannelServiceDesc> = createClient(ChannelServiceDesc, transport);
  const messages: Client<typeof MessageServiceDesc> = createClient(MessageServiceDesc, transport);
  const eventService: Client<typeof EventServiceDesc> = createClient(EventServiceDesc, transport);
  const as = (user: UserPrincipal) => ({
    headers: { authorization: `Bearer ${adminToken}`, [ON_BEHALF_OF_HEADER]: user.userId.toString() },
  });
  const timeoutMs = options.readTimeoutMs ?? READ_TIMEOUT_MS;
  const asReading = (user: UserPrincipal) => ({ ...as(user), timeoutMs });
  // At most this many reads at once; the others start in arrival order (a start-up storm may queue tens of thousands).
  const read: Limiter = pLimit(options.maxConcurrentReads ?? MAX_CONCURRENT_READS);
  const backend = createEventBackend({
    // Taken under the slot of the whole channelsOf below, all pages in one.
    listMyChannels: (user, req) => channels.listMyChannels(req, asReading(user)),
    listChanges: (user, req) => read(() => eventService.listChanges(req, asReading(user))),
  });
  return {
    backend: { ...backend, channelsOf: queuedChannelReads(backend.channelsOf, read) },
    messages: {
      async postMessage(user, req, onQueued): Promise<PostMessageResponse> {
        try {
          return await messages.postMessage(req, as(user));
        } finally {
          onQueued?.();
        }
      },
    },
  };
}

type Limiter = <T>(call: () => Promise<T>) => Promise<T>;

function queuedChannelReads(channelsOf: EventBackend["channelsOf"], read: Limiter): EventBackend["channelsOf"] {
  const queued = new Map<bigint, { result?: Promise<bigint[]>; wanted: Array<(() => boolean) | undefined> }>();
  return (user, stillWanted) => {
    const userId = user.userId;
    const waiting = queued.get(userId);
    if (waiting?.result) {
      waiting.wanted.push(stillWanted);
      return waiting.result;
    }
    const entry: { result?: Promise<bigint[]>; wanted: Array<(() => boolean) | undefined> } = { wanted: [stillWanted] };
    let sent = false;
    const result = read(async () => {
      sent = true;
      if (queued.get(userId) === entry) queued.delete(userId);
      if (!entry.wanted.some((wanted) => wanted === undefined || wanted())) return [];
      return channelsOf(user);
    });
    entry.result = result;
    if (!sent) queued.set(userId, entry);
    return result;
  };
}
