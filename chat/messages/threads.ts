/**
 * ListThreadReplies: one thread's replies, paged like history (oldest first
 * by default: a thread is read from its start), with its root and summary.
 */
import { create } from "@bufbuild/protobuf";
import {
  ListThreadRepliesResponseSchema,
  type ListThreadRepliesRequest,
  type ListThreadRepliesResponse,
} from "../../gen/chat/v1/message_pb.js";
import type { UserPrincipal } from "../auth.js";
import type { ChannelAccess } from "../channels/access.js";
import type { ServiceDeps } from "../deps.js";
import { notFound } from "../errors.js";
import { invalid, optionalId, pageSize, requireId } from "../validate.js";
import { DEFAULT_PAGE, MAX_PAGE, orderOf } from "./history.js";
import type { StoredMessages } from "./stored-messages.js";
import { viewMessages } from "./viewer.js";

export type ListThreadReplies = (caller: UserPrincipal, req: ListThreadRepliesRequest) => Promise<ListThreadRepliesResponse>;

export function createThreads(deps: Pick<ServiceDeps, "store">, access: ChannelAccess, stored: StoredMessages): ListThreadReplies {
  const { store } = deps;
  return async (caller, req) => {
    const channelId = requireId("channel_id", req.channelId);
    const rootId = requireId("thread_root_id", req.threadRootId);
    const limit = pageSize("limit", req.limit, DEFAULT_PAGE, MAX_PAGE);
    const before = optionalId("before", req.before);
    const after = optionalId("after", req.after);
    if (before !== undefined && after !== undefined && before <= after) {
      throw invalid("before", `must be greater than after (${before} <= ${after})`);
    }
    const order = orderOf(req.order, "oldest-first");
    const { channel } = await access.isMember(caller, channelId);
    const root = await stored.find(channel, rootId);
    // A reply is not a thread; a deleted root without replies is gone.
    if (!root || root.threadRootId !== 0n || (root.deletedAt !== 0 && root.thread === undefined)) throw notFound(`thread ${rootId}`);
    const rows = await store.listThreadReplies(channelId, rootId, {
      ...(before !== undefined && { before }),
      ...(after !== undefined && { after }),
      limit: limit + 1,
      order,
    });
    const page = rows.slice(0, limit);
    const [viewedRoot, ...messages] = await viewMessages(store, caller.userId, channelId, [root, ...page]);
    return create(ListThreadRepliesResponseSchema, {
      root: viewedRoot!,
      messages,
      nextCursor: page.at(-1)?.id ?? 0n,
      hasMore: rows.length > limit,
    });
  };
}
