/**
 * Seeding through the public API (Connect JSON) for the scenarios' setup():
 * users with tokens (admin calls), channels, memberships. Names carry the
 * run id, so that runs against a long-lived deployment do not collide.
 */
import type { ConnectJson } from "./connect-json.js";
import { mapLimit } from "./scenario.js";

export interface SeedUser {
  /** 64-bit id as a decimal string (as Connect JSON writes it). */
  id: string;
  token: string;
}

export async function createUsers(
  http: ConnectJson,
  adminToken: string,
  count: number,
  prefix: string,
  log?: (m: string) => void,
  concurrency = 32,
): Promise<SeedUser[]> {
  let done = 0;
  let lastLog = Date.now();
  return mapLimit(Array.from({ length: count }, (_, i) => i), concurrency, async (i) => {
    const { user } = await http.ok<{ user: { id: string } }>("chat.v1.UserService/CreateUser", { name: `${prefix} ${i}`, email: `${prefix}-${i}@example.com` }, adminToken);
    const { token } = await http.ok<{ token: string }>("chat.v1.UserService/IssueToken", { userId: user.id, ttlSeconds: 86_400 }, adminToken);
    done++;
    if (log && Date.now() - lastLog > 5000) {
      lastLog = Date.now();
      log(`  users: ${done}/${count}`);
    }
    return { id: user.id, token };
  });
}

/** Creates a group channel (the creator is its first member); returns its id. */
export async function createChannel(
  http: ConnectJson,
  token: string,
  name: string,
  delivery: "DELIVERY_MODE_PERSISTED" | "DELIVERY_MODE_FAST" | "DELIVERY_MODE_EPHEMERAL" = "DELIVERY_MODE_PERSISTED",
): Promise<string> {
  const { channel } = await http.ok<{ channel: { id: string } }>("chat.v1.ChannelService/CreateChannel", { name, delivery }, token);
  return channel.id;
}

/** Joins each (token, channel) pair. */
export async function joinAll(http: ConnectJson, joins: Array<{ token: string; channelId: string }>, concurrency = 32): Promise<void> {
  await mapLimit(joins, concurrency, (j) => http.ok("chat.v1.ChannelService/JoinChannel", { channelId: j.channelId }, j.token));
}

/** A short id for this run: lower-case letters and digits, valid in channel names. */
export function newRunId(): string {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36).padStart(3, "0")}`;
}
