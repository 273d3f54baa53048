/**
 * Group channels themselves: create, read, rename or set the topic, and the
 * caller's own list of channels with their memberships.
 */
import { create } from "@bufbuild/protobuf";
import {
  CreateChannelResponseSchema,
  GetChannelResponseSchema,
  ListMyChannelsResponseSchema,
  UpdateChannelResponseSchema,
} from "../../gen/chat/v1/channel_pb.js";
import { AlreadyExistsError, type ChannelRecord } from "../../store/store.js";
import { channelToProto, deliveryFromProto, membershipToProto, visibilityFromProto } from "../convert.js";
import type { ServiceDeps } from "../deps.js";
import { notFound } from "../errors.js";
import { decodePageToken, paginate } from "../page-token.js";
import { channelName, invalid, optionalShortText, pageSize, requireId } from "../validate.js";
import type { ChannelAccess } from "./access.js";
import type { ChannelService } from "./channel-service.js";
import { nameTaken, newMembership, requireGroup } from "./rules.js";

export type ChannelOperations = Pick<ChannelService, "createChannel" | "getChannel" | "updateChannel" | "listMyChannels">;

export function createChannelOperations(deps: Pick<ServiceDeps, "store" | "ids" | "events" | "now">, access: ChannelAccess): ChannelOperations {
  const { store, ids, events, now } = deps;
  return {
    async createChannel(caller, req) {
      const name = channelName("name", req.name);
      const visibility = visibilityFromProto(req.visibility);
      if (!visibility) throw invalid("visibility", `unknown value ${req.visibility}`);
      const delivery = deliveryFromProto(req.delivery);
      if (!delivery) throw invalid("delivery", `unknown value ${req.delivery}`);
      const topic = optionalShortText("topic", req.topic, 250);
      const channel: ChannelRecord = {
        id: ids.next(),
        kind: "group",
        name,
        visibility,
        delivery,
        topic,
        createdBy: caller.userId,
        createdAt: now(),
        directUserIds: [],
      };
      const owner = newMembership(channel.id, caller.userId, "owner", now());
      try {
        await store.createGroupChannel(channel, owner);
      } catch (err) {
        if (err instanceof AlreadyExistsError) throw nameTaken(name, err);
        throw err;
      }
      await events.channelCreated(channel);
      await events.memberJoined(channel, owner, caller.userId);
      return create(CreateChannelResponseSchema, {
        channel: channelToProto(channel),
        membership: membershipToProto(owner),
      });
    },

    async getChannel(caller, req) {
      const channelId = requireId("channel_id", req.channelId);
      await access.visible(caller, channelId);
      const channel = await store.getChannel(channelId);
      if (!channel) throw notFound(`channel ${channelId}`);
      return create(GetChannelResponseSchema, { channel: channelToProto(channel) });
    },

    async updateChannel(caller, req) {
      const channelId = requireId("channel_id", req.channelId);
      const name = req.name === undefined ? undefined : channelName("name", req.name);
      const topic = req.topic === undefined ? undefined : optionalShortText("topic", req.topic, 250);
      if (name === undefined && topic === undefined) throw invalid("name", "set name or topic (or both)");
      const { channel } = await access.member(caller, channelId);
      requireGroup(channel, "rename or set the topic of");
      let updated: ChannelRecord;
      try {
        updated = await store.updateChannel(channelId, {
          ...(name !== undefined && { name }),
          ...(topic !== undefined && { topic }),
        });
      } catch (err) {
        if (err instanceof AlreadyExistsError && name !== undefined) throw nameTaken(name, err);
        throw err;
      }
      await events.channelUpdated(updated);
      return create(UpdateChannelResponseSchema, { channel: channelToProto(updated) });
    },

    async listMyChannels(caller, req) {
      const limit = pageSize("page_size", req.pageSize, 100, 500);
      const after = decodePageToken("page_token", "my_channels", req.pageToken);
      const rows = await store.listChannelsOfUser(caller.userId, after, limit + 1);
      const { page, nextPageToken } = paginate(rows, limit, "my_channels", (r) => r.channel.id);
      return create(ListMyChannelsResponseSchema, {
        channels: page.map(({ channel, membership }) => ({
          channel: channelToProto(channel),
          membership: membershipToProto(membership),
        })),
        nextPageToken,
      });
    },
  };
}
