/**
 * MessageService: posting (posting.ts), streams of posts (stream-posts.ts)
 * and history (history.ts), one object for the RPC routes and the gateway,
 * so that every path shares authorization, validation, idempotency and
 * delivery semantics.
 */
import type { StreamPostMessagesRequest, StreamPostMessagesResponse, ListMessagesRequest } from "../../gen/chat/v1/message_pb.js";
import type { UserPrincipal } from "../auth.js";
import type { ChannelAccess } from "../channels/access.js";
import type { ServiceDeps } from "../deps.js";
import { createHistory, type ListMessagesResult } from "./history.js";
import { createPosting, type PostMessage } from "./posting.js";
import { streamPosts } from "./stream-posts.js";

export interface MessageService {
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
  const postMessage = createPosting(deps, access);
  return {
    postMessage,
    streamPostMessages: (caller, requests, stop) => streamPosts({ postMessage, logger: deps.logger, now: deps.now }, caller, requests, stop),
    listMessages: createHistory(deps, access),
  };
}
