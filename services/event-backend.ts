/** The EventBackend of a process that runs the API: the domain services, called directly. */
import { create } from "@bufbuild/protobuf";
import { GetChannelRequestSchema, ListMyChannelsRequestSchema } from "../gen/chat/v1/channel_pb.js";
import { ListMessagesRequestSchema, MessageOrder } from "../gen/chat/v1/message_pb.js";
import type { ChannelService } from "./channels.js";
import type { EventBackend } from "./event-session.js";
import type { MessageService } from "./messages.js";

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
      const [{ response }, { channel }] = await Promise.all([
        messages.listMessages(
          user,
          create(ListMessagesRequestSchema, { channelId, after, limit, order: MessageOrder.OLDEST_FIRST }),
        ),
        channels.getChannel(user, create(GetChannelRequestSchema, { channelId })),
      ]);
      return { messages: response.messages, hasMore: response.hasMore, delivery: channel!.delivery };
    },
  };
}
