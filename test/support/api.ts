/** Starts a real API server on port 0 with its own data folder, and clients for it. */
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig } from "../../core/config.js";
import { createLogger } from "../../core/logger.js";
import { ChannelService, DeliveryMode, Visibility } from "../../gen/chat/v1/channel_pb.js";
import { MessageService } from "../../gen/chat/v1/message_pb.js";
import { EventService } from "../../gen/chat/v1/event_service_pb.js";
import { UserService } from "../../gen/chat/v1/user_pb.js";
import type { RunningApi } from "../../app/api-node.js";
import { startChatNode, type ChatNode } from "../../app/single-node.js";

export const ADMIN_TOKEN = "test-admin-token-0123456789";

export interface TestApi {
  api: RunningApi;
  node: ChatNode;
  url: string;
  /** The gateway's WebSocket URL, ws://127.0.0.1:PORT/ws. */
  wsUrl: string;
  dataDir: string;
  admin: Clients;
  /** Clients that send the given bearer token (or none). */
  clients(token?: string, protocol?: Protocol): Clients;
  /** Creates a user and a token for them; returns their clients. */
  newUser(name?: string): Promise<TestUser>;
  stop(): Promise<void>;
}

export type Protocol = "connect-json" | "connect-binary" | "grpc" | "grpc-web";

export interface Clients {
  users: Client<typeof UserService>;
  channels: Client<typeof ChannelService>;
  messages: Client<typeof MessageService>;
  events: Client<typeof EventService>;
}

export interface TestUser extends Clients {
  id: bigint;
  token: string;
  email: string;
}

let userCounter = 0;

export async function startTestApi(env: Record<string, string> = {}): Promise<TestApi> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "chat-test-"));
  const config = loadConfig({
    env: {
      CHAT_DATA_DIR: dataDir,
      CHAT_API_HOST: "127.0.0.1",
      CHAT_API_PORT: "0",
      CHAT_GATEWAY_HOST: "127.0.0.1",
      CHAT_GATEWAY_PORT: "0",
      CHAT_ADMIN_TOKEN: ADMIN_TOKEN,
      CHAT_SHUTDOWN_GRACE_MS: "2000",
      ...env,
    },
    argv: [],
  });
  const logger = createLogger(process.env.TEST_LOG_LEVEL ?? "silent");
  const node = await startChatNode({ config, logger, defaultMetrics: false });
  const api = node.api;
  const url = api.server.url;
  const gatewayAddress = node.gateway.addresses[0]!;
  const wsUrl = `ws://${gatewayAddress.host}:${gatewayAddress.port}/ws`;

  const transport = (token: string | undefined, protocol: Protocol): Transport => {
    const interceptors: Interceptor[] = token
      ? [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))]
      : [];
    switch (protocol) {
      case "connect-json":
        return createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors, useHttpGet: true });
      case "connect-binary":
        return createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true, interceptors });
      case "grpc":
        return createGrpcTransport({ baseUrl: url, interceptors });
      case "grpc-web":
        return createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", interceptors });
    }
  };
  const clients = (token?: string, protocol: Protocol = "connect-json"): Clients => {
    const t = transport(token, protocol);
    const make = <S extends DescService>(s: S) => createClient(s, t);
    return { users: make(UserService), channels: make(ChannelService), messages: make(MessageService), events: make(EventService) };
  };
  const admin = clients(ADMIN_TOKEN);

  return {
    api,
    node,
    url,
    wsUrl,
    dataDir,
    admin,
    clients,
    async newUser(name) {
      const n = ++userCounter;
      const email = `user${n}-${process.pid}@example.com`;
      const { user } = await admin.users.createUser({ name: name ?? `User ${n}`, email });
      const { token } = await admin.users.issueToken({ userId: user!.id });
      return { id: user!.id, token, email, ...clients(token) };
    },
    async stop() {
      await node.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export { DeliveryMode, Visibility };
