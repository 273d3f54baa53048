/**
 * ChannelService: group channels (channels.ts), their memberships
 * (memberships.ts) and direct messages (direct-messages.ts), one object for
 * the RPC routes and the live sessions. Who may see what is access.ts's rule.
 */
import type {
  AddMemberRequest,
  AddMemberResponse,
  CreateChannelRequest,
  CreateChannelResponse,
  GetChannelRequest,
  GetChannelResponse,
  JoinChannelRequest,
  JoinChannelResponse,
  LeaveChannelRequest,
  LeaveChannelResponse,
  ListMembersRequest,
  ListMembersResponse,
  ListMyChannelsRequest,
  ListMyChannelsResponse,
  OpenDirectMessageRequest,
  OpenDirectMessageResponse,
  RemoveMemberRequest,
  RemoveMemberResponse,
  UpdateChannelRequest,
  UpdateChannelResponse,
  UpdateMembershipRequest,
  UpdateMembershipResponse,
} from "../../gen/chat/v1/channel_pb.js";
import type { UserPrincipal } from "../auth.js";
import type { ServiceDeps } from "../deps.js";
import type { ChannelAccess } from "./access.js";
import { createChannelOperations } from "./channels.js";
import { createDirectMessages } from "./direct-messages.js";
import { createMembershipOperations } from "./memberships.js";

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

export function createChannelService(deps: ServiceDeps, access: ChannelAccess): ChannelService {
  return {
    ...createChannelOperations(deps, access),
    ...createMembershipOperations(deps, access),
    ...createDirectMessages(deps),
  };
}
