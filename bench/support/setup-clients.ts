/**
 * Seeding for benchmarks: users with tokens (through the admin credential),
 * channels and memberships, over Connect (binary, HTTP/2). Setup only: the
 * measured calls use the lean callers (h2-caller.ts, post-stream.ts).
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ChannelService, DeliveryMode } from "../../gen/chat/v1/channel_pb.js";
import { UserService } from "../../gen/chat/v1/user_pb.js";
import { inParallel } from "./parallel.js";

export interface User {
  id: bigint;
  token: string;
}

export function setupClients(apiUrl: string, adminToken: string) {
  const transport = createConnectTransport({ baseUrl: apiUrl, httpVersion: "2", useBinaryFormat: true });
  const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
  const users = createClient(UserService, transport);
  const channels = createClient(ChannelService, transport);
  return {
    /** `n` users named `<prefix> <i>`, each with a 6-hour token, `concurrency` at a time. */
    async createUsers(n: number, prefix: string, concurrency = 32): Promise<User[]> {
      const out: User[] = new Array<User>(n);
      await inParallel(n, concurrency, async (i) => {
        const { user } = await users.createUser({ name: `${prefix} ${i}`, email: `${prefix}-${i}@bench.example.com` }, as(adminToken));
        const { token } = await users.issueToken({ userId: user!.id, ttlSeconds: 6 * 3600 }, as(adminToken));
        out[i] = { id: user!.id, token };
      });
      return out;
    },
    /** A PERSISTED public channel owned by `owner`. */
    async createChannel(owner: User, name: string): Promise<bigint> {
      const { channel } = await channels.createChannel({ name, delivery: DeliveryMode.PERSISTED }, as(owner.token));
      return channel!.id;
    },
    async join(user: User, channelId: bigint): Promise<void> {
      await channels.joinChannel({ channelId }, as(user.token));
    },
  };
}
