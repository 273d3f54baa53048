/**
 * EventBackend over the API's services, in process (the domain services
 * called directly) or remote (Connect calls to an API process, for gateway
 * processes). Both page the same way.
 */
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  ChannelService as ChannelServiceDesc,
  GetChannelRequestSchema,
  ListMyChannelsRequestSchema,
  type GetChannelRequest,
  type GetChannelResponse,
  type ListMyChannelsRequest,
  type ListMyChannelsResponse,
} from "../gen/chat/v1/channel_pb.js";
import {
  ListMessagesRequestSchema,
  MessageOrder,
  MessageService as MessageServiceDesc,
  type ListMessagesRequest,
  type ListMessagesResponse,
  type Message,
  type PostMessageResponse,
} from "../gen/chat/v1/message_pb.js";
import type { UserPrincipal } from "./auth.js";
import type { ChannelService } from "./channels.js";
import type { EventBackend } from "./event-session.js";
import { ON_BEHALF_OF_HEADER } from "./interceptors.js";
import { MAX_PAGE, type MessageService } from "./messages.js";

/** The three reads a session needs, in whatever way they reach the API. */
interface ReadApi {
  listMyChannels(user: UserPrincipal, req: ListMyChannelsRequest): Promise<ListMyChannelsResponse>;
  getChannel(user: UserPrincipal, req: GetChannelRequest): Promise<GetChannelResponse>;
  listMessages(user: UserPrincipal, req: ListMessagesRequest): Promise<ListMessagesResponse>;
}

function createEventBackend(api: ReadApi): EventBackend {
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

/** In the API's own process: the domain services, called directly. */
export function createLocalEventBackend(channels: ChannelService, messages: MessageService): EventBackend {
  return createEventBackend({
    listMyChannels: (user, req) => channels.listMyChannels(user, req),
    getChannel: (user, req) => channels.getChannel(user, req),
    listMessages: async (user, req) => (await messages.listMessages(user, req)).response,
  });
}

export interface RemoteApi {
  backend: EventBackend;
  /** Posts for a user through the API; onQueued runs once the API answered (keeps a socket's posts in order). */
  messages: Pick<MessageService, "postMessage">;
}

/**
 * For a gateway in another process: Connect calls to the API with the admin
 * credential acting for each user (the chat-on-behalf-of header).
 */
export function createRemoteApi(apiUrl: string, adminToken: string): RemoteApi {
  const transport = createConnectTransport({ baseUrl: apiUrl, httpVersion: "2", useBinaryFormat: true });
  const channels: Client<typeof ChannelServiceDesc> = createClient(ChannelServiceDesc, transport);
  const messages: Client<typeof MessageServiceDesc> = createClient(MessageServiceDesc, transport);
  const as = (user: UserPrincipal) => ({
    headers: { authorization: `Bearer ${adminToken}`, [ON_BEHALF_OF_HEADER]: user.userId.toString() },
  });
  return {
    backend: createEventBackend({
      listMyChannels: (user, req) => channels.listMyChannels(req, as(user)),
      getChannel: (user, req) => channels.getChannel(req, as(user)),
      listMessages: (user, req) => messages.listMessages(req, as(user)),
    }),
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
