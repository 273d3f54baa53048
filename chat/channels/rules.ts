/**
 * What the channel operations share: a new membership's defaults, the rule
 * that a direct message's members are fixed, and the error for a taken name.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ChannelRecord, MembershipRecord } from "../../store/store.js";
import { failedPrecondition } from "../errors.js";

export function newMembership(channelId: bigint, userId: bigint, role: MembershipRecord["role"], joinedAt: number): MembershipRecord {
  return { channelId, userId, role, isStar: false, isFavorite: false, mute: false, preferences: {}, joinedAt };
}

export function requireGroup(channel: ChannelRecord, action: string): void {
  if (channel.kind !== "group") throw failedPrecondition(`cannot ${action} a direct message: its members are fixed`);
}

export function nameTaken(name: string, err: unknown): ConnectError {
  return new ConnectError(`name: a channel named ${JSON.stringify(name)} already exists`, Code.AlreadyExists, undefined, undefined, err);
}
