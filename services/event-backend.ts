/** The EventBackend of a process that runs the API: the domain services, called directly. */
import { create } from "@bufbuild/protobuf";
import { GetChannelRequestSchema, ListMyChannelsRequestSchema } from "../gen/chat/v1/channel_pb.js";
import { ListMessagesRequestSchema, MessageOrder, type Message } from "../gen/chat/v1/message_pb.js";
import type { ChannelService } from "./channels.js";
import type { EventBackend } from "./event-session.js";
import { MAX_PAGE, type MessageService } from "./messages.js";

export function createLocalEventBackend(channels: ChannelService, messages: MessageService): EventBackend {
  return {
    async channelsOf(user) {
      const ids: bigint[] = [];
      let pageToken = "";
      do {
        const page = await channels.listMyChannels(user, create(ListMyChannelsRequestSchema, { pageSize: 500, pageToken }));
        for (const c of page.channels) if (c.channel) ids.push(c.channel.id);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return ids;
    },
    async missed(user, channelId, after, limit) {
      const { channel } = await channels.getChannel(user, create(GetChannelRequestSchema, { channelId }));
      const found: Message[] = [];
      let cursor = after;
      let hasMore = true;
      // Pages of at most MAX_PAGE, the API's own bound, until the limit.
      while (hasMore && found.length < limit) {
        const { response } = await messages.listMessages(
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
