/**
 * Memberships of group channels: join, leave, add, remove, list, and the
 * caller's own flags and preferences on a membership. Any member may add
 * people (the only way into a private channel); only the owner removes
 * others; anyone may leave.
 */
import { create } from "@bufbuild/protobuf";
import {
  AddMemberResponseSchema,
  JoinChannelResponseSchema,
  LeaveChannelResponseSchema,
  ListMembersResponseSchema,
  RemoveMemberResponseSchema,
  UpdateMembershipResponseSchema,
} from "../../gen/chat/v1/channel_pb.js";
import { applyMembershipChanges } from "../../store/store.js";
import { membershipToProto } from "../convert.js";
import type { ServiceDeps } from "../deps.js";
import { notFound, permissionDenied } from "../errors.js";
import { decodePageToken, paginate } from "../page-token.js";
import { codePointLength, invalid, optionalShortText, pageSize, requireId } from "../validate.js";
import type { ChannelAccess } from "./access.js";
import type { ChannelService } from "./channel-service.js";
import { newMembership, requireGroup } from "./rules.js";

/** Most preference keys one membership holds, and one update sets. */
const MAX_PREFERENCES = 50;

export type MembershipOperations = Pick<
  ChannelService,
  "joinChannel" | "leaveChannel" | "addMember" | "removeMember" | "listMembers" | "updateMembership"
>;

export function createMembershipOperations(deps: Pick<ServiceDeps, "store" | "events" | "now">, access: ChannelAccess): MembershipOperations {
  const { store, events, now } = deps;
  return {
    async joinChannel(caller, req) {
      const { channel, membership } = await access.visible(caller, requireId("channel_id", req.channelId));
      requireGroup(channel, "join");
      if (membership) return create(JoinChannelResponseSchema, { membership: membershipToProto(membership) });
      // visible() already hid private channels from non-members.
      const added = await store.addMembership(newMembership(channel.id, caller.userId, "member", now()));
      if (added.created) await events.memberJoined(channel, added.membership, caller.userId);
      return create(JoinChannelResponseSchema, { membership: membershipToProto(added.membership) });
    },

    async leaveChannel(caller, req) {
      const { channel, membership } = await access.visible(caller, requireId("channel_id", req.channelId));
      requireGroup(channel, "leave");
      if (membership && (await store.removeMembership(channel.id, caller.userId))) {
        access.forget(channel.id, caller.userId);
        await events.memberLeft(channel, caller.userId, caller.userId);
      }
      return create(LeaveChannelResponseSchema, {});
    },

    async addMember(caller, req) {
      const channelId = requireId("channel_id", req.channelId);
      const userId = requireId("user_id", req.userId);
      const { channel } = await access.member(caller, channelId);
      requireGroup(channel, "add members to");
      if (!(await store.getUser(userId))) throw notFound(`user ${userId}`);
      const added = await store.addMembership(newMembership(channel.id, userId, "member", now()));
      if (added.created) await events.memberJoined(channel, added.membership, caller.userId);
      return create(AddMemberResponseSchema, { membership: membershipToProto(added.membership) });
    },

    async removeMember(caller, req) {
      const channelId = requireId("channel_id", req.channelId);
      const userId = requireId("user_id", req.userId);
      const { channel, membership } = await access.member(caller, channelId);
      requireGroup(channel, "remove members from");
      if (userId !== caller.userId && membership.role !== "owner") {
        throw permissionDenied(`only the owner of channel ${channelId} can remove other members`);
      }
      if (!(await store.removeMembership(channel.id, userId))) throw notFound(`member ${userId} of channel ${channelId}`);
      access.forget(channel.id, userId);
      await events.memberLeft(channel, userId, caller.userId);
      return create(RemoveMemberResponseSchema, {});
    },

    async listMembers(caller, req) {
      const channelId = requireId("channel_id", req.channelId);
      const limit = pageSize("page_size", req.pageSize, 100, 1000);
      const after = decodePageToken("page_token", "members", req.pageToken);
      await access.member(caller, channelId);
      const members = await store.listMembers(channelId, after, limit + 1);
      const { page, nextPageToken } = paginate(members, limit, "members", (m) => m.userId);
      return create(ListMembersResponseSchema, { members: page.map(membershipToProto), nextPageToken });
    },

    async updateMembership(caller, req) {
      const channelId = requireId("channel_id", req.channelId);
      const entries = Object.entries(req.preferences);
      if (entries.length > MAX_PREFERENCES) {
        throw invalid("preferences", `at most ${MAX_PREFERENCES} keys per update (got ${entries.length})`);
      }
      for (const [key, value] of entries) {
        if (key === "" || codePointLength(key) > 64) throw invalid("preferences", "keys must be 1 to 64 characters");
        optionalShortText(`preferences[${JSON.stringify(key)}]`, value, 1024);
      }
      const { membership } = await access.member(caller, channelId);
      const preferences = Object.fromEntries(entries.map(([k, v]) => [k, v === "" ? null : v]));
      const merged = applyMembershipChanges(membership, { preferences }).preferences;
      if (Object.keys(merged).length > MAX_PREFERENCES) {
        throw invalid("preferences", `a membership holds at most ${MAX_PREFERENCES} keys`);
      }
      const updated = await store.updateMembership(channelId, caller.userId, {
        ...(req.isStar !== undefined && { isStar: req.isStar }),
        ...(req.isFavorite !== undefined && { isFavorite: req.isFavorite }),
        ...(req.mute !== undefined && { mute: req.mute }),
        preferences,
      });
      if (!updated) throw notFound(`channel ${channelId}`);
      await events.membershipUpdated(updated);
      return create(UpdateMembershipResponseSchema, { membership: membershipToProto(updated) });
    },
  };
}
