/**
 * History: ListMessages pages, newest or oldest first, bounded by cursors.
 *
 * Messages change (edits, deletes, reactions, thread summaries, pins), so a
 * page is true only at the channel's history revision: the seq of its last
 * change that can alter a page already read (store.historyRevision). Pages
 * wholly in the past (no post can land in them any more) are kept in memory
 * keyed by that revision, so any change makes every cached page of the
 * channel miss at once, on every node: the revision is read from the store
 * with each request. Identical reads in flight share one store read. The
 * answer carries an ETag of the page's content (revision and message ids),
 * so an HTTP client revalidates a Connect GET and is answered 304 while
 * nothing changed. Membership is checked on every read, cached or not.
 */
import { create } from "@bufbuild/protobuf";
import { LRUCache } from "lru-cache";
import { timestampOfId } from "../../core/ids.js";
import { ListMessagesResponseSchema, MessageOrder, type ListMessagesRequest, type ListMessagesResponse } from "../../gen/chat/v1/message_pb.js";
import type { UserPrincipal } from "../auth.js";
import type { ChannelAccess } from "../channels/access.js";
import type { StoredMessage } from "../../store/store.js";
import type { ServiceDeps } from "../deps.js";
import { invalid, optionalId, pageSize, requireId } from "../validate.js";
import { viewMessages } from "./viewer.js";

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;
/**
 * A history page whose upper bound is older than this gets no new posts:
 * later writes (FAST persistence, clock skew between nodes) land within this
 * window of their id's time. Such pages are cached (until the revision moves).
 */
export const HISTORY_SETTLE_MS = 60_000;
/** Memory for cached immutable history pages, and how long one is kept. */
export const HISTORY_CACHE_BYTES = 64 * 1024 * 1024;
export const HISTORY_CACHE_TTL_MS = 10 * 60_000;

export interface ListMessagesResult {
  response: ListMessagesResponse;
  /** An HTTP validator of this answer's content: equal tags, equal pages. */
  etag: string;
}

/** A page as the store gave it, the same for every viewer. */
interface Page {
  rows: StoredMessage[];
  hasMore: boolean;
  settled: boolean;
}

export type ListMessages = (caller: UserPrincipal, req: ListMessagesRequest) => Promise<ListMessagesResult>;

export function createHistory(deps: Pick<ServiceDeps, "store" | "metrics" | "now">, access: ChannelAccess): ListMessages {
  const { store, metrics, now } = deps;
  // Scroll-back reads the same pages again and again (many members opening
  // the same channel). The TTL bounds how long a page stays wrong if a post
  // ever lands later than HISTORY_SETTLE_MS (FAST writers down for longer).
  const pages = new LRUCache<string, Page>({
    maxSize: HISTORY_CACHE_BYTES,
    sizeCalculation: ({ rows }) => 256 + rows.reduce((n, m) => n + 256 + m.text.length * 2 + m.reactions.length * 64, 0),
    ttl: HISTORY_CACHE_TTL_MS,
  });
  // Identical reads in flight share one store read.
  const reading = new Map<string, Promise<Page>>();

  const readPage = async (
    channelId: bigint,
    before: bigint | undefined,
    after: bigint | undefined,
    limit: number,
    order: "newest-first" | "oldest-first",
  ): Promise<Page> => {
    const rows = await store.listMessages(channelId, {
      ...(before !== undefined && { before }),
      ...(after !== undefined && { after }),
      limit: limit + 1,
      order,
    });
    const page = rows.slice(0, limit);
    const hasMore = rows.length > limit;
    // Bounded on both sides by the past: no post can be added to this page any more.
    const upper = order === "newest-first" ? before : hasMore ? page.at(-1)?.id : before;
    const settled = upper !== undefined && timestampOfId(upper) < now() - HISTORY_SETTLE_MS;
    return { rows: page, hasMore, settled };
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
    const [, revision] = await Promise.all([access.isMember(caller, channelId), store.historyRevision(channelId)]);
    const key = `${channelId}:${revision}:${before ?? ""}:${after ?? ""}:${limit}:${order}`;
    let page = pages.get(key);
    if (page) {
      metrics.historyReads.inc({ source: "cache" });
    } else {
      const pending = reading.get(key);
      if (pending) {
        metrics.historyReads.inc({ source: "coalesced" });
        page = await pending;
      } else {
        const read = readPage(channelId, before, after, limit, order).finally(() => reading.delete(key));
        reading.set(key, read);
        metrics.historyReads.inc({ source: "store" });
        page = await read;
        if (page.settled) pages.set(key, page);
      }
    }
    const response = create(ListMessagesResponseSchema, {
      messages: await viewMessages(store, caller.userId, channelId, page.rows),
      nextCursor: page.rows.at(-1)?.id ?? 0n,
      hasMore: page.hasMore,
    });
    return { response, etag: etagOf(revision, page) };
  };
}

/**
 * What makes a page's content: the revision moves with every change to a
 * message (the viewer's own reactions too), and a page is a run of the
 * channel's ids, so a post landing in it changes its first or last id, or
 * its length. Weak: equal meaning, not equal bytes.
 */
function etagOf(revision: bigint, page: Page): string {
  const first = page.rows[0]?.id ?? 0n;
  const last = page.rows.at(-1)?.id ?? 0n;
  return `W/"${revision.toString(36)}.${first.toString(36)}.${last.toString(36)}.${page.rows.length}${page.hasMore ? "+" : ""}"`;
}

/** A page order from the request's enum; UNSPECIFIED means `unspecified` (history: newest first; threads: oldest first). */
export function orderOf(order: MessageOrder, unspecified: "newest-first" | "oldest-first" = "newest-first"): "newest-first" | "oldest-first" {
  switch (order) {
    case MessageOrder.UNSPECIFIED:
      return unspecified;
    case MessageOrder.NEWEST_FIRST:
      return "newest-first";
    case MessageOrder.OLDEST_FIRST:
      return "oldest-first";
    default:
      throw invalid("order", `unknown value ${order}`);
  }
}
