/**
 * What the cluster tests share: the environment of processes on the real
 * Cassandra and NATS of the global setup (a fresh keyspace and subject prefix
 * per file), Connect clients per node, and cleanup.
 */
import cassandra from "cassandra-driver";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ChannelService } from "../../gen/chat/v1/channel_pb.js";
import { MessageService } from "../../gen/chat/v1/message_pb.js";
import { UserService } from "../../gen/chat/v1/user_pb.js";
import type { ChatProcess } from "../../infra/harness/chat-process.js";

export interface ClusterEnv {
  admin: string;
  keyspace: string;
  env: Record<string, string>;
}

export function clusterEnv(tag: string): ClusterEnv {
  const admin = `${tag}-admin-token-0123456789`;
  const keyspace = `${tag}_${process.pid}_${Date.now() % 100000}`;
  return {
    admin,
    keyspace,
    env: {
      CHAT_ADMIN_TOKEN: admin,
      CHAT_JWT_SECRET: `${tag}-jwt-secret-0123456789-0123456789`,
      CHAT_BUS: "nats",
      CHAT_NATS_URL: process.env.CHAT_TEST_NATS_URL!,
      CHAT_SUBJECT_PREFIX: `${tag}${process.pid}x${Date.now()}`,
      CHAT_STORE: "cassandra",
      CHAT_CASSANDRA_CONTACT_POINTS: process.env.CHAT_TEST_CASSANDRA!,
      CHAT_CASSANDRA_KEYSPACE: keyspace,
    },
  };
}

const bearer = (t: string): Interceptor => (next) => (req) => (req.header.set("authorization", `Bearer ${t}`), next(req));

export function clientsOf(url: string, token: string) {
  const transport = createConnectTransport({ baseUrl: url, httpVersion: "2", interceptors: [bearer(token)] });
  return {
    users: createClient(UserService, transport),
    channels: createClient(ChannelService, transport),
    messages: createClient(MessageService, transport),
  };
}

/** A user created through the admin credential, with a token. */
export async function createUser(admin: ReturnType<typeof clientsOf>, name: string): Promise<{ id: bigint; token: string }> {
  const { user } = await admin.users.createUser({ name, email: `${name.toLowerCase()}-${Date.now()}@example.com` });
  return { id: user!.id, token: (await admin.users.issueToken({ userId: user!.id })).token };
}

/** Stops the processes (SIGTERM) and drops the keyspace. */
export async function tearDown(processes: ChatProcess[], keyspace: string): Promise<void> {
  for (const p of processes) if (p.child.exitCode === null) p.child.kill("SIGTERM");
  await Promise.all(processes.map((p) => p.exited));
  const client = new cassandra.Client({ contactPoints: [process.env.CHAT_TEST_CASSANDRA!], localDataCenter: "datacenter1" });
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await client.shutdown();
}
