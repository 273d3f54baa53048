/**
 * A bot written against the .proto files with a plain gRPC library, as one
 * would in any language: @grpc/grpc-js with @grpc/proto-loader, no generated
 * TypeScript, no Connect. Also health checking and server reflection.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, startTestApi, type TestApi } from "../support/api.js";

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
type UnaryFn = (req: object, md: grpc.Metadata, cb: Callback<any>) => void;
type AnyClient = grpc.Client & Record<string, UnaryFn>;

const loadOptions = { keepCase: true, includeDirs: ["proto"], longs: String, enums: String, defaults: true, oneofs: true };
const chat = grpc.loadPackageDefinition(
  protoLoader.loadSync(["chat/v1/user.proto", "chat/v1/channel.proto", "chat/v1/message.proto", "chat/v1/error.proto"], loadOptions),
) as any;
const health = grpc.loadPackageDefinition(protoLoader.loadSync(["grpc/health/v1/health.proto"], loadOptions)) as any;
const reflection = grpc.loadPackageDefinition(protoLoader.loadSync(["grpc/reflection/v1/reflection.proto"], loadOptions)) as any;

let t: TestApi;
let target: string;
const clients: grpc.Client[] = [];
function client(ctor: new (target: string, creds: grpc.ChannelCredentials) => grpc.Client): AnyClient {
  const c = new ctor(target, grpc.credentials.createInsecure());
  clients.push(c);
  return c as AnyClient;
}

function call<T = any>(c: AnyClient, method: string, req: object, token?: string): Promise<T> {
  const md = new grpc.Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) => c[method]!(req, md, (err, res) => (err ? reject(err) : resolve(res))));
}

async function status(p: Promise<unknown>): Promise<grpc.status> {
  try {
    await p;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
  throw new Error("expected the call to fail");
}

beforeAll(async () => {
  t = await startTestApi();
  target = new URL(t.url).host;
});
afterAll(async () => {
  for (const c of clients) c.close();
  await t.stop();
});

describe("a gRPC bot with @grpc/grpc-js and the .proto files", () => {
  it("creates itself, opens a channel, posts and reads history", async () => {
    const users = client(chat.chat.v1.UserService);
    const channels = client(chat.chat.v1.ChannelService);
    const messages = client(chat.chat.v1.MessageService);
    const { user } = await call(users, "CreateUser", { name: "Deploy Bot", email: `bot-${Date.now()}@example.com` }, ADMIN_TOKEN);
    expect(typeof user.id).toBe("string");
    const { token } = await call(users, "IssueToken", { user_id: user.id }, ADMIN_TOKEN);
    const { channel } = await call(channels, "CreateChannel", { name: `deploys-${Date.now()}`, visibility: "VISIBILITY_PRIVATE" }, token);
    expect(channel.visibility).toBe("VISIBILITY_PRIVATE");
    for (let i = 0; i < 5; i++) {
      await call(messages, "PostMessage", { channel_id: channel.id, text: `deploy #${i} done`, client_msg_id: `d${i}` }, token);
    }
    const retry = await call(messages, "PostMessage", { channel_id: channel.id, text: "deploy #0 done", client_msg_id: "d0" }, token);
    expect(retry.duplicate).toBe(true);
    const page = await call(messages, "ListMessages", { channel_id: channel.id, limit: 3 }, token);
    expect(page.messages.map((m: { text: string }) => m.text)).toEqual(["deploy #4 done", "deploy #3 done", "deploy #2 done"]);
    expect(page.has_more).toBe(true);
    const rest = await call(messages, "ListMessages", { channel_id: channel.id, before: page.next_cursor }, token);
    expect(rest.messages).toHaveLength(2);
  });

  it("gets gRPC status codes for bad input and bad credentials", async () => {
    const users = client(chat.chat.v1.UserService);
    const messages = client(chat.chat.v1.MessageService);
    expect(await status(call(users, "CreateUser", { name: "x", email: "nope" }, ADMIN_TOKEN))).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await status(call(users, "CreateUser", { name: "x", email: "x@example.com" }))).toBe(grpc.status.UNAUTHENTICATED);
    expect(await status(call(users, "CreateUser", { name: "x", email: "x@example.com" }, "forged"))).toBe(grpc.status.UNAUTHENTICATED);
    const u = await t.newUser();
    expect(await status(call(messages, "PostMessage", { channel_id: "1", text: "hi" }, u.token))).toBe(grpc.status.NOT_FOUND);
    expect(await status(call(messages, "PostMessage", { channel_id: "1", text: "" }, u.token))).toBe(grpc.status.INVALID_ARGUMENT);
  });
});

describe("grpc.health.v1", () => {
  it("reports SERVING for the server and each service, NOT_FOUND for unknown ones", async () => {
    const h = client(health.grpc.health.v1.Health);
    expect(await call(h, "Check", { service: "" })).toEqual({ status: "SERVING" });
    expect(await call(h, "Check", { service: "chat.v1.MessageService" })).toEqual({ status: "SERVING" });
    expect(await status(call(h, "Check", { service: "nope.v1.Nothing" }))).toBe(grpc.status.NOT_FOUND);
  });

  it("streams NOT_SERVING to watchers when the server shuts down", async () => {
    const other = await startTestApi();
    const h = new health.grpc.health.v1.Health(new URL(other.url).host, grpc.credentials.createInsecure()) as grpc.Client & {
      Watch(req: object): grpc.ClientReadableStream<{ status: string }>;
    };
    const seen: string[] = [];
    const stream = h.Watch({ service: "" });
    const ended = new Promise<void>((resolve) => {
      stream.on("data", (m) => {
        seen.push(m.status);
        if (seen.length === 1) void other.stop();
      });
      stream.on("error", () => resolve());
      stream.on("end", () => resolve());
    });
    await ended;
    h.close();
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
  });
});

describe("grpc.reflection.v1", () => {
  function ask(requests: object[]): Promise<any[]> {
    const r = client(reflection.grpc.reflection.v1.ServerReflection) as unknown as {
      ServerReflectionInfo(): grpc.ClientDuplexStream<object, any>;
    };
    const stream = r.ServerReflectionInfo();
    const answers: any[] = [];
    return new Promise((resolve, reject) => {
      stream.on("data", (a) => {
        answers.push(a);
        if (answers.length === requests.length) stream.end();
      });
      stream.on("end", () => resolve(answers));
      stream.on("error", reject);
      for (const q of requests) stream.write(q);
    });
  }

  it("lists the services and serves file descriptors by symbol and by name", async () => {
    const [list, bySymbol, byName, missing] = await ask([
      { list_services: "" },
      { file_containing_symbol: "chat.v1.MessageService.PostMessage" },
      { file_by_filename: "chat/v1/event.proto" },
      { file_containing_symbol: "no.such.Thing" },
    ]);
    const names = list.list_services_response.service.map((s: { name: string }) => s.name);
    expect(names).toEqual(expect.arrayContaining(["chat.v1.UserService", "chat.v1.ChannelService", "chat.v1.MessageService", "grpc.health.v1.Health"]));
    const files = bySymbol.file_descriptor_response.file_descriptor_proto.map((b: Buffer) => fromBinary(FileDescriptorProtoSchema, b));
    expect(files[0].name).toBe("chat/v1/message.proto");
    expect(files.map((f: { name: string }) => f.name)).toContain("google/protobuf/timestamp.proto");
    expect(files[0].service[0].method.map((m: { name: string }) => m.name)).toEqual([
      "PostMessage",
      "ListMessages",
      "StreamPostMessages",
      "EditMessage",
      "DeleteMessage",
      "ListThreadReplies",
      "AddReaction",
      "RemoveReaction",
      "PinMessage",
      "UnpinMessage",
      "ListPins",
    ]);
    const event = fromBinary(FileDescriptorProtoSchema, byName.file_descriptor_response.file_descriptor_proto[0]);
    expect(event.messageType.map((m) => m.name)).toContain("Event");
    expect(missing.error_response.error_code).toBe(grpc.status.NOT_FOUND);
  });
});

describe("a gRPC bot streaming posts", () => {
  it("posts over StreamPostMessages with a duplex call and gets one answer per post, in order", async () => {
    const u = await t.newUser();
    const { channel } = await u.channels.createChannel({ name: `stream-bot-${Date.now()}` });
    const messages = client(chat.chat.v1.MessageService) as unknown as {
      StreamPostMessages(md: grpc.Metadata): grpc.ClientDuplexStream<object, any>;
    };
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${u.token}`);
    const call = messages.StreamPostMessages(md);
    const answers: any[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (a) => answers.push(a));
      call.on("end", () => resolve());
      call.on("error", reject);
    });
    for (let i = 0; i < 20; i++) call.write({ channel_id: channel!.id.toString(), text: `line ${i}`, client_msg_id: `l${i}` });
    call.write({ channel_id: channel!.id.toString(), text: "", client_msg_id: "bad" });
    call.end();
    await done;
    expect(answers.map((a) => a.client_msg_id)).toEqual([...Array.from({ length: 20 }, (_, i) => `l${i}`), "bad"]);
    expect(answers.at(-1).error).toMatchObject({ code: "ERROR_CODE_INVALID_ARGUMENT" });
    expect(answers.slice(0, 20).map((a) => a.message.text)).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i}`));
  });
});
