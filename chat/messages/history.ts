/**
 * History: ListMessages pages, newest or oldest first, bounded by cursors.
 * Pages that lie wholly in the past never change, so they are kept in memory
 * (and may be cached by HTTP clients); identical reads in flight share one
 * store read. Membership is checked on every read, cached or not.
 */
import { create } from "@bufbuild/protobuf";
import { LRUCache } from "lru-cache";
import { timestampOfId } from "../../core/ids.js";
import { ListMessagesResponseSchema, MessageOrder, type ListMessagesRequest, type ListMessagesResponse } from "../../gen/chat/v1/message_pb.js";
import type { UserPrincipal } from "../auth.js";
import type { ChannelAccess } from "../channels/access.js";
import { messageToProto } from "../convert.js";
import type { ServiceDeps } from "../deps.js";
import { invalid, optionalId, pageSize, requireId } from "../validate.js";

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;
/**
 * A history page whose upper bound is older than this is treated as
 * immutable: later writes (FAST persistence, clock skew between nodes) land
 * within this window of their id's time.
 */
export const HISTORY_SETTLE_MS = 60_000;
/** Memory for cached immutable history pages, and how long one is kept. */
export const HISTORY_CACHE_BYTES = 64 * 1024 * 1024;
export const HISTORY_CACHE_TTL_MS = 10 * 60_000;

export interface ListMessagesResult {
  response: ListMessagesResponse;
  /** True when the page can never change, so HTTP caches may keep it. */
  immutable: boolean;
}

export type ListMessages = (caller: UserPrincipal, req: ListMessagesRequest) => Promise<ListMessagesResult>;

export function createHistory(deps: Pick<ServiceDeps, "store" | "metrics" | "now">, access: ChannelAccess): ListMessages {
  const { store, metrics, now } = deps;
  // Pages wholly in the past never change, and scroll-back reads the same
  // pages again and again (many members opening the same channel). The TTL
  // bounds how long a page stays wrong if a write ever lands later than
  // HISTORY_SETTLE_MS (FAST writers down for longer than that).
  const pages = new LRUCache<string, ListMessagesResult>({
    maxSize: HISTORY_CACHE_BYTES,
    sizeCalculation: ({ response }) => 256 + response.messages.reduce((n, m) => n + 128 + m.text.length * 2, 0),
    ttl: HISTORY_CACHE_TTL_MS,
  });
  // Identical reads in flight share one store read.
  const reading = new Map<string, Promise<ListMessagesResult>>();

  const readPage = async (
    channelId: bigint,
    before: bigint | undefined,
    after: bigint | undefined,
    limit: number,
    order: "newest-first" | "oldest-first",
  ): Promise<ListMessagesResult> => {
    const rows = await store.listMessages(channelId, {
      ...(before !== undefined && { before }),
      ...(after !== undefined && { after }),
      limit: limit + 1,
      order,
    });
    const page = rows.slice(0, limit);
    const hasMore = rows.length > limit;
    const response = create(ListMessagesResponseSchema, {
      messages: page.map(messageToProto),
      nextCursor: page.at(-1)?.id ?? 0n,
      hasMore,
    });
    // Bounded on both sides by the past: nothing can be added to this page any more.
    const upper = order === "newest-first" ? before : hasMore ? page.at(-1)?.id : before;
    const immutable = upper !== undefined && timestampOfId(upper) < now() - HISTORY_SETTLE_MS;
    return { response, immutable };
  };

  return async (caller, req) => {
    const channelId = requireId("channel_id", req.channelId);
    const limit = pageSize("limit", req.limit, DEFAULT_PAGE, MAX_PAGE);
    const before = optionalId("before", req.before);
    const after = optionalId("after", req.after);
    if (before !== undefined && after !== undefined && before <= after) {
      throw invalid("before", `must be greater than after (${before} <= ${after})`);
    }
    const order = orderOf(req.order);
    await access.isMember(caller, channelId);
    const key = `${channelId}:${before ?? ""}:${after ?? ""}:${limit}:${order}`;
    const cached = pages.get(key);
    if (cached) {
      metrics.historyReads.inc({ source: "cache" });
      return cached;
    }
    const pending = reading.get(key);
    if (pending) {
      metrics.historyReads.inc({ source: "coalesced" });
      return pending;
    }
    const read = readPage(channelId, before, after, limit, order).finally(() => reading.delete(key));
    reading.set(key, read);
    metrics.historyReads.inc({ source: "store" });
    const result = await read;
    if (result.immutable) pages.set(key, result);
    return result;
  };
}

function orderOf(order: MessageOrder): "newest-first" | "oldest-first" {
  switch (order) {
    case MessageOrder.UNSPECIFIED:
    case MessageOrder.NEWEST_FIRST:
      return "newest-first";
    case MessageOrder.OLDEST_FIRST:
      return "oldest-first";
    default:
      throw invalid("order", `unknown value ${order}`);
  }
}
