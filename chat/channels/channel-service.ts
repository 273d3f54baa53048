/**
 * ChannelService: group channels, direct messages and memberships.
 *
 * Visibility rule: a private channel or direct message that the caller is not
 * a member of answers NOT_FOUND, exactly like a channel that does not exist,
 * so ids cannot be probed. A public channel that the caller has not joined
 * answers PERMISSION_DENIED where membership is required.
 */
import { create } from "@bufbuild/protobuf";
import { LRUCache } from "lru-cache";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  AddMemberResponseSchema,
  CreateChannelResponseSchema,
  GetChannelResponseSchema,
  JoinChannelResponseSchema,
  LeaveChannelResponseSchema,
  ListMembersResponseSchema,
  ListMyChannelsResponseSchema,
  OpenDirectMessageResponseSchema,
  RemoveMemberResponseSchema,
  UpdateChannelResponseSchema,
  UpdateMembershipResponseSchema,
  type AddMemberRequest,
  type AddMemberResponse,
  type CreateChannelRequest,
  type CreateChannelResponse,
  type GetChannelRequest,
  type GetChannelResponse,
  type JoinChannelRequest,
  type JoinChannelResponse,
  type LeaveChannelRequest,
  type LeaveChannelResponse,
  type ListMembersRequest,
  type ListMembersResponse,
  type ListMyChannelsRequest,
  type ListMyChannelsResponse,
  type OpenDirectMessageRequest,
  type OpenDirectMessageResponse,
  type RemoveMemberRequest,
  type RemoveMemberResponse,
  type UpdateChannelRequest,
  type UpdateChannelResponse,
  type UpdateMembershipRequest,
  type UpdateMembershipResponse,
} from "../../gen/chat/v1/channel_pb.js";
import { AlreadyExistsError, applyMembershipChanges, type ChannelRecord, type MembershipRecord } from "../../store/store.js";
import type { UserPrincipal } from "../auth.js";
import { channelToProto, deliveryFromProto, membershipToProto, visibilityFromProto } from "../convert.js";
import type { ServiceDeps } from "../deps.js";
import { failedPrecondition, notFound, permissionDenied } from "../errors.js";
import { decodePageToken, paginate } from "../page-token.js";
import {
  channelName,
  codePointLength,
  invalid,
  optionalShortText,
  pageSize,
  requireId,
} from "../validate.js";

export interface ChannelService {
  createChannel(caller: UserPrincipal, req: CreateChannelRequest): Promise<CreateChannelResponse>;
  getChannel(caller: UserPrincipal, req: GetChannelRequest): Promise<GetChannelResponse>;
  updateChannel(caller: UserPrincipal, req: UpdateChannelRequest): Promise<UpdateChannelResponse>;
  listMyChannels(caller: UserPrincipal, req: ListMyChannelsRequest): Promise<ListMyChannelsResponse>;
  joinChannel(caller: UserPrincipal, req: JoinChannelRequest): Promise<JoinChannelResponse>;
  leaveChannel(caller: UserPrincipal, req: LeaveChannelRequest): Promise<LeaveChannelResponse>;
  addMember(caller: UserPrincipal, req: AddMemberRequest): Promise<AddMemberResponse>;
  removeMember(caller: UserPrincipal, req: RemoveMemberRequest): Promise<RemoveMemberResponse>;
  listMembers(caller: UserPrincipal, req: ListMembersRequest): Promise<ListMembersResponse>;
  openDirectMessage(caller: UserPrincipal, req: OpenDirectMessageRequest): Promise<OpenDirectMessageResponse>;
  updateMembership(caller: UserPrincipal, req: UpdateMembershipRequest): Promise<UpdateMembershipResponse>;
}

/** Channel access checks shared by the channel and message services. */
export interface ChannelAccess {
  /**
   * The channel if the caller may see it (public, or a member); NOT_FOUND
   * otherwise. Its name and topic may be stale: use it for decisions, not answers.
   */
  visible(caller: UserPrincipal, channelId: bigint): Promise<{ channel: ChannelRecord; membership?: MembershipRecord }>;
  /** The channel and the caller's membership; NOT_FOUND or PERMISSION_DENIED otherwise. */
  member(caller: UserPrincipal, channelId: bigint): Promise<{ channel: ChannelRecord; membership: MembershipRecord }>;
  /**
   * member() for the hot paths (posting, reading history): a positive answer
   * is reused for a while (MEMBER_CHECK_TTL_MS on a shared store). Leaving or
   * being removed through this node takes effect at once; through another
   * node within that time. The
   * membership's flags may be stale: decide with it, never answer with it.
   */
  isMember(caller: UserPrincipal, channelId: bigint): Promise<{ channel: ChannelRecord }>;
  /** Drops a remembered membership (it just ended). */
  forget(channelId: bigint, userId: bigint): void;
}

/**
 * How long a positive membership check is reused by posting and reading when
 * other nodes share the store (their leaves and removals are seen this late).
 */
export const MEMBER_CHECK_TTL_MS = 3_000;
/** The same with a store only this process writes: every membership ends through forget(). */
export const SOLE_WRITER_MEMBER_CHECK_TTL_MS = 10 * 60_000;
/**
 * Fraction of the TTL after which a membership check in use is re-read in the
 * background. A sender who posts at least every (1 - REFRESH_AFTER) x TTL
 * (1.5 s on Cassandra) never waits for the store; such a pair costs the store up to
 * twice the reads of letting it expire, and only such pairs cost more at all.
 */
const REFRESH_AFTER = 0.5;

interface RememberedMember {
  channel: ChannelRecord;
  /** performance.now() when the read that found the membership began. */
  readStartedAt: number;
  refreshing: boolean;
}

export function createChannelAccess(deps: Pick<ServiceDeps, "store">, options: { memberCheckTtlMs?: number } = {}): ChannelAccess {
  const { store } = deps;
  // Authorization needs only a channel's kind, visibility and delivery mode,
  // which never change after creation, so channel records are cached for it.
  // Name and topic may be stale here: RPCs that return a channel read it fresh.
  const channels = new LRUCache<bigint, ChannelRecord>({ max: 100_000 });
  const channelOf = async (channelId: bigint) => {
    let channel = channels.get(channelId);
    if (!channel) {
      channel = await store.getChannel(channelId);
      if (channel) channels.set(channelId, channel);
    }
    return channel;
  };
  const visible: ChannelAccess["visible"] = async (caller, channelId) => {
    const [channel, membership] = await Promise.all([
      channelOf(channelId),
      store.getMembership(channelId, caller.userId),
    ]);
    if (!channel || (!membership && channel.visibility === "private")) throw notFound(`channel ${channelId}`);
    return membership ? { channel, membership } : { channel };
  };
  const member: ChannelAccess["member"] = async (caller, channelId) => {
    const { channel, membership } = await visible(caller, channelId);
    if (!membership) throw permissionDenied(`not a member of channel ${channelId}: join it first`);
    return { channel, membership };
  };
  // Every post and history read checks membership; on a remote store that is a
  // round trip per request, for an answer that rarely changes. A positive
  // answer in use is re-read in the background once REFRESH_AFTER of its life
  // has passed, so a busy sender never waits for the store (a check waited
  // behind Cassandra every 3 s per channel and sender, the tail of a stream of
  // posts); it still never outlives the TTL counted from when its read began.
  const ttlMs = options.memberCheckTtlMs ?? MEMBER_CHECK_TTL_MS;
  const refreshAfterMs = ttlMs * REFRESH_AFTER;
  const members = new LRUCache<string, RememberedMember>({ max: 200_000, ttl: ttlMs });
  const remember = (key: string, channel: ChannelRecord, readStartedAt: number) => {
    const left = ttlMs - (performance.now() - readStartedAt);
    if (left > 0) members.set(key, { channel, readStartedAt, refreshing: false }, { ttl: left });
  };
  const refresh = (key: string, known: RememberedMember, caller: UserPrincipal, channelId: bigint) => {
    known.refreshing = true;
    const startedAt = performance.now();
    member(caller, channelId).then(
      // Only if nothing forgot or replaced the entry meanwhile: a leave through
      // this node must not be undone by a read that began before it.
      ({ channel }) => members.get(key) === known && remember(key, channel, startedAt),
      (err: unknown) => {
        if (members.get(key) !== known) return;
        const code = ConnectError.from(err).code;
        // Gone: drop it now. Otherwise (store unreachable) it expires as usual.
        if (code === Code.NotFound || code === Code.PermissionDenied) members.delete(key);
        else known.refreshing = false;
      },
    );
  };
  return {
    visible,
    member,
    async isMember(caller, channelId) {
      const key = `${channelId}:${caller.userId}`;
      const known = members.get(key);
      if (known) {
        if (!known.refreshing && performance.now() - known.readStartedAt >= refreshAfterMs) refresh(key, known, caller, channelId);
        return known;
      }
      const readStartedAt = performance.now();
      const { channel } = await member(caller, channelId);
      remember(key, channel, readStartedAt);
      return { channel };
    },
    forget(channelId, userId) {
      members.delete(`${channelId}:${userId}`);
    },
  };
}

const MAX_PREFERENCES = 50;

export function createChannelService(deps: ServiceDeps, access: ChannelAccess): ChannelService {
  const { store, ids, events, now } = deps;

  const newMembership = (channelId: bigint, userId: bigint, role: MembershipRecord["role"]): MembershipRecord => ({
    channelId,
    userId,
    role,
    isStar: false,
    isFavorite: false,
    mute: false,
    preferences: {},
    joinedAt: now(),
  });

  const requireGroup = (channel: ChannelRecord, action: string) => {
    if (channel.kind !== "group") throw failedPrecondition(`cannot ${action} a direct message: its members are fixed`);
  };

  const nameTaken = (name: string, err: unknown) =>
    new ConnectError(`name: a channel named ${JSON.stringify(name)} already exists`, Code.AlreadyExists, undefined, undefined, err);

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
      const owner = newMembership(channel.id, caller.userId, "owner");
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

    async joinChannel(caller, req) {
      const { channel, membership } = await access.visible(caller, requireId("channel_id", req.channelId));
      requireGroup(channel, "join");
      if (membership) return create(JoinChannelResponseSchema, { membership: membershipToProto(membership) });
      // visible() already hid private channels from non-members.
      const added = await store.addMembership(newMembership(channel.id, caller.userId, "member"));
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
      const added = await store.addMembership(newMembership(channel.id, userId, "member"));
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
        newMembership(channel.id, low, "member"),
        newMembership(channel.id, high, "member"),
      ]);
      if (result.created) await events.directMessageOpened(result.channel);
      return create(OpenDirectMessageResponseSchema, {
        channel: channelToProto(result.channel),
        created: result.created,
      });
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
