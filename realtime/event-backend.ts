/**
 * What a session reads from the API (EventBackend), and the one way of
 * reading it over any ReadApi: in process (the domain services called
 * directly, below) or remote (remote-api.ts, for gateway processes). Both
 * page the same way.
 */
import { create } from "@bufbuild/protobuf";
import type { UserPrincipal } from "../chat/auth.js";
import type { ChannelService } from "../chat/channels/channel-service.js";
import type { KnownUsers } from "../chat/known-users.js";
import { MAX_PAGE } from "../chat/messages/history.js";
import type { MessageService } from "../chat/messages/message-service.js";
import {
  GetChannelRequestSchema,
  ListMyChannelsRequestSchema,
  type DeliveryMode,
  type GetChannelRequest,
  type GetChannelResponse,
  type ListMyChannelsRequest,
  type ListMyChannelsResponse,
} from "../gen/chat/v1/channel_pb.js";
import {
  ListMessagesRequestSchema,
  MessageOrder,
  type ListMessagesRequest,
  type ListMessagesResponse,
  type Message,
} from "../gen/chat/v1/message_pb.js";

/** What a session needs from the API. */
export interface EventBackend {
  /**
   * Every channel the user belongs to. A backend that queues reads may skip
   * one (and answer anything) once stillWanted says its session is gone.
   */
  channelsOf(user: UserPrincipal, stillWanted?: () => boolean): Promise<bigint[]>;
  /**
   * Up to `limit` messages of the channel after `after`, oldest first, with
   * the channel's delivery mode. Throws NOT_FOUND or PERMISSION_DENIED for
   * channels the user may not read.
   */
  missed(
    user: UserPrincipal,
    channelId: bigint,
    after: bigint,
    limit: number,
  ): Promise<{ messages: Message[]; hasMore: boolean; delivery: DeliveryMode }>;
}

/** The three reads a session needs, in whatever way they reach the API. */
export interface ReadApi {
  listMyChannels(user: UserPrincipal, req: ListMyChannelsRequest): Promise<ListMyChannelsResponse>;
  getChannel(user: UserPrincipal, req: GetChannelRequest): Promise<GetChannelResponse>;
  listMessages(user: UserPrincipal, req: ListMessagesRequest): Promise<ListMessagesResponse>;
}

export function createEventBackend(api: ReadApi): EventBackend {
  return {
    async channelsOf(user) {
      const ids: bigint[] = [];
      let pageToken = "";
      do {
        const page = await api.listMyChannels(user, create(ListMyChannelsRequestSchema, { pageSize: 500, pageToken }));
        for (const c of page.channels) if (c.channel) ids.push(c.channel.id);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return ids;
    },
    async missed(user, channelId, after, limit) {
      const { channel } = await api.getChannel(user, create(GetChannelRequestSchema, { channelId }));
      const found: Message[] = [];
      let cursor = after;
      let hasMore = true;
      // Pages of at most MAX_PAGE, the API's own bound, until the limit.
      while (hasMore && found.length < limit) {
        const response = await api.listMessages(
          user,
          create(ListMessagesRequestSchema, {
            channelId,
            after: cursor,
            limit: Math.min(MAX_PAGE, limit - found.length),
            order: MessageOrder.OLDEST_FIRST,
          }),
        );
        found.push(...response.messages);
        hasMore = response.hasMore;
        cursor = response.nextCursor;
      }
      return { messages: found, hasMore, delivery: channel!.delivery };
    },
  };
}

/**
 * In the API's own process: the domain services, called directly. A
 * session's first read proves its user exists, as the RPC interceptor does
 * for a gateway in another process.
 */
export function createLocalEventBackend(channels: ChannelService, messages: MessageService, knownUsers: KnownUsers): EventBackend {
  return createEventBackend({
    listMyChannels: async (user, req) => {
      await knownUsers.require(user.userId);
      return channels.listMyChannels(user, req);
    },
    getChannel: (user, req) => channels.getChannel(user, req),
    listMessages: async (user, req) => (await messages.listMessages(user, req)).response,
  });
}

