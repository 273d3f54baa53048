/**
 * Direct messages: a channel of exactly two members, fixed, and one per pair
 * whoever opens it (also when both open it at once, from any node).
 */
import { create } from "@bufbuild/protobuf";
import { OpenDirectMessageResponseSchema } from "../../gen/chat/v1/channel_pb.js";
import type { ChannelRecord } from "../../store/store.js";
import { channelToProto } from "../convert.js";
import type { ServiceDeps } from "../deps.js";
import { notFound } from "../errors.js";
import { invalid, requireId } from "../validate.js";
import type { ChannelService } from "./channel-service.js";
import { newMembership } from "./rules.js";

export function createDirectMessages(deps: Pick<ServiceDeps, "store" | "ids" | "events" | "now">): Pick<ChannelService, "openDirectMessage"> {
  const { store, ids, events, now } = deps;
  return {
    async openDirectMessage(caller, req) {
      const otherId = requireId("user_id", req.userId);
      if (otherId === caller.userId) throw invalid("user_id", "cannot open a direct message with yourself");
      if (!(await store.getUser(otherId))) throw notFound(`user ${otherId}`);
      const [low, high] = caller.userId < otherId ? [caller.userId, otherId] : [otherId, caller.userId];
      const channel: ChannelRecord = {
        id: ids.next(),
        kind: "direct",
        name: "",
        visibility: "private",
        delivery: "persisted",
        topic: "",
        createdBy: caller.userId,
        createdAt: now(),
        directUserIds: [low, high],
      };
      const result = await store.openDirectChannel(channel, [
        newMembership(channel.id, low, "member", now()),
        newMembership(channel.id, high, "member", now()),
      ]);
      if (result.created) await events.directMessageOpened(result.channel);
      return create(OpenDirectMessageResponseSchema, {
        channel: channelToProto(result.channel),
        created: result.created,
      });
    },
  };
}
