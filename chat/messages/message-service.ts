/**
 * MessageService: posting (posting.ts), streams of posts (stream-posts.ts),
 * history (history.ts), threads (threads.ts), changes to messages
 * (message-changes.ts) and the change log's replay (change-events.ts), one
 * object for the RPC routes and the gateway, so that every path shares
 * authorization, validation, idempotency and delivery semantics.
 */
import { create } from "@bufbuild/protobuf";
import type { StreamPostMessagesRequest, StreamPostMessagesResponse, ListMessagesRequest } from "../../gen/chat/v1/message_pb.js";
import { ListChangesResponseSchema, type ListChangesRequest, type ListChangesResponse } from "../../gen/chat/v1/event_service_pb.js";
import type { UserPrincipal } from "../auth.js";
import type { ChannelAccess } from "../channels/access.js";
import type { ServiceDeps } from "../deps.js";
import { createHistory, type ListMessagesResult } from "./history.js";
import { createPosting, type PostMessage } from "./posting.js";
import { streamPosts } from "./stream-posts.js";
import { createMessageChanges, type MessageChanges } from "./message-changes.js";
import { createStoredMessages } from "./stored-messages.js";
import { createThreads, type ListThreadReplies } from "./threads.js";
import { replayChanges } from "./change-events.js";
import { deliveryModeOf } from "../convert.js";
import { pageSize, requireId } from "../validate.js";

/** Changes per ListChanges page. */
export const DEFAULT_CHANGES_PAGE = 100;
export const MAX_CHANGES_PAGE = 500;

export interface MessageService extends MessageChanges {
  listThreadReplies: ListThreadReplies;
  /** EventService.ListChanges: the channel's changes after a seq, as events showing each message as it is now. */
  listChanges(caller: UserPrincipal, req: ListChangesRequest): Promise<ListChangesResponse>;
  postMessage: PostMessage;
  /**
   * Posts each request in turn and answers each, errors included, in order.
   * Once `stop` aborts (the server drains), no further request is taken: the
   * posts started are answered, then the stream ends with UNAVAILABLE.
   */
  streamPostMessages(
    caller: UserPrincipal,
    requests: AsyncIterable<StreamPostMessagesRequest>,
    stop?: AbortSignal,
  ): AsyncIterable<StreamPostMessagesResponse>;
  listMessages(caller: UserPrincipal, req: ListMessagesRequest): Promise<ListMessagesResult>;
}

export function createMessageService(deps: ServiceDeps, access: ChannelAccess): MessageService {
  const stored = createStoredMessages(deps);
  const postMessage = createPosting(deps, access, stored);
  return {
    ...createMessageChanges(deps, access, stored),
    listThreadReplies: createThreads(deps, access, stored),
    async listChanges(caller, req) {
      const channelId = requireId("channel_id", req.channelId);
      const limit = pageSize("limit", req.limit, DEFAULT_CHANGES_PAGE, MAX_CHANGES_PAGE);
      const { channel } = await access.isMember(caller, channelId);
      const replay = await replayChanges(deps.store, channelId, req.afterSeq, limit, deliveryModeOf(channel));
      return create(ListChangesResponseSchema, {
        events: replay.events,
        nextSeq: replay.lastSeq,
        hasMore: replay.hasMore,
        complete: replay.complete,
      });
    },
    postMessage,
    streamPostMessages: (caller, requests, stop) => streamPosts({ postMessage, logger: deps.logger, now: deps.now }, caller, requests, stop),
    listMessages: createHistory(deps, access),
  };
}
