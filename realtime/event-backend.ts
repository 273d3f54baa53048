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
import { MAX_CHANGES_PAGE, type MessageService } from "../chat/messages/message-service.js";
import { ListMyChannelsRequestSchema, type ListMyChannelsRequest, type ListMyChannelsResponse } from "../gen/chat/v1/channel_pb.js";
import type { Event } from "../gen/chat/v1/event_pb.js";
import { ListChangesRequestSchema, type ListChangesRequest, type ListChangesResponse } from "../gen/chat/v1/event_service_pb.js";

/** What a session needs from the API. */
export interface EventBackend {
  /**
   * Every channel the user belongs to. A backend that queues reads may skip
   * one (and answer anything) once stillWanted says its session is gone.
   */
  channelsOf(user: UserPrincipal, stillWanted?: () => boolean): Promise<bigint[]>;
  /**
   * Up to `limit` of the channel's changes after afterSeq, in order, as
   * events showing each message as it is now. Throws NOT_FOUND or
   * PERMISSION_DENIED for channels the user may not read.
   */
  missed(user: UserPrincipal, channelId: bigint, afterSeq: bigint, limit: number): Promise<MissedChanges>;
}

export interface MissedChanges {
  events: Event[];
  /** The seq the replay reached: afterSeq when nothing was missed. */
  lastSeq: bigint;
  /** More changes follow lastSeq than `limit` allowed. */
  hasMore: boolean;
  /** False when some changes after afterSeq are no longer kept. */
  complete: boolean;
}

/** The two reads a session needs, in whatever way they reach the API. */
export interface ReadApi {
  listMyChannels(user: UserPrincipal, req: ListMyChannelsRequest): Promise<ListMyChannelsResponse>;
  listChanges(user: UserPrincipal, req: ListChangesRequest): Promise<ListChangesResponse>;
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
    async missed(user, channelId, afterSeq, limit) {
      const events: Event[] = [];
      let lastSeq = afterSeq;
      let hasMore = true;
      let complete = true;
      // Pages of at most MAX_CHANGES_PAGE, the API's own bound, until the limit.
      while (hasMore && events.length < limit) {
        const page = await api.listChanges(
          user,
          create(ListChangesRequestSchema, { channelId, afterSeq: lastSeq, limit: Math.min(MAX_CHANGES_PAGE, limit - events.length) }),
        );
        events.push(...page.events);
        hasMore = page.hasMore;
        complete &&= page.complete;
        lastSeq = page.nextSeq;
      }
      return { events, lastSeq, hasMore, complete };
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
    listChanges: (user, req) => messages.listChanges(user, req),
  });
}
