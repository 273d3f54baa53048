/**
 * The server under test of the Connect conformance suite (see
 * conformance.test.ts): connectconformance --mode server runs this program,
 * writes one size-delimited connectrpc.conformance.v1.ServerCompatRequest to
 * its stdin, reads one ServerCompatResponse (host and port) from its stdout,
 * sends the suite's RPCs with its reference clients, and ends it with SIGTERM.
 *
 * It serves connectrpc.conformance.v1.ConformanceService through exactly the
 * product's RPC stack: startRpcServer (rpc/server.ts: HTTP/1.1 and h2c on one
 * port, CORS, the connect-node adapter, the interceptors). Nothing here is
 * generated: the service and its messages are descriptors read at start from
 * the FileDescriptorSet that infra/harness/conformance.ts builds from the
 * pinned module's protos, and the handlers work on those dynamic messages.
 *
 * Usage: node dist/test/conformance/server-under-test.js [descriptor-set.binpb]
 * (without the argument, the harness finds or builds the set). Logs go to
 * stderr, at CONFORMANCE_LOG_LEVEL (default silent): stdout is the protocol.
 */
import {
  create,
  createFileRegistry,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type Message,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { anyPack, FileDescriptorSetSchema, type Any } from "@bufbuild/protobuf/wkt";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { pino } from "pino";
import { createAuthenticator } from "../../chat/auth.js";
import { createApiMetrics } from "../../core/metrics.js";
import { ensureConformanceSuite } from "../../infra/harness/conformance.js";
import { startRpcServer } from "../../rpc/server.js";

const PACKAGE = "connectrpc.conformance.v1";
const SERVICE = `${PACKAGE}.ConformanceService`;

// ---------------------------------------------------------------------------
// The shapes this server reads, as protobuf-es represents the messages of
// connectrpc/conformance/v1 (lowerCamelCase fields, oneofs as {case, value}).
// loadSchema() checks that the descriptors really have these fields.

interface Header {
  name: string;
  value: string[];
}

interface ErrorDefinition {
  code: number;
  message?: string;
  details: Any[];
}

interface UnaryResponseDefinition {
  responseHeaders: Header[];
  response: { case: "responseData"; value: Uint8Array } | { case: "error"; value: ErrorDefinition } | { case: undefined; value?: undefined };
  responseTrailers: Header[];
  responseDelayMs: number;
  rawResponse?: Message;
}

interface StreamResponseDefinition {
  responseHeaders: Header[];
  responseData: Uint8Array[];
  responseDelayMs: number;
  error?: ErrorDefinition;
  responseTrailers: Header[];
  rawResponse?: Message;
}

/** UnaryRequest, IdempotentUnaryRequest, ClientStreamRequest. */
interface UnaryShapedRequest {
  responseDefinition?: UnaryResponseDefinition;
}

/** ServerStreamRequest, BidiStreamRequest (full_duplex only on the latter). */
interface StreamShapedRequest {
  responseDefinition?: StreamResponseDefinition;
  fullDuplex?: boolean;
}

const EXPECTED_FIELDS: Record<string, string[]> = {
  Header: ["name", "value"],
  Error: ["code", "message", "details"],
  UnaryResponseDefinition: ["responseHeaders", "responseData", "error", "responseTrailers", "responseDelayMs", "rawResponse"],
  StreamResponseDefinition: ["responseHeaders", "responseData", "responseDelayMs", "error", "responseTrailers", "rawResponse"],
  UnaryRequest: ["responseDefinition", "requestData"],
  IdempotentUnaryRequest: ["responseDefinition", "requestData"],
  ClientStreamRequest: ["responseDefinition", "requestData"],
  ServerStreamRequest: ["responseDefinition", "requestData"],
  BidiStreamRequest: ["responseDefinition", "fullDuplex", "requestData"],
  ConformancePayload: ["data", "requestInfo"],
  "ConformancePayload.RequestInfo": ["requestHeaders", "timeoutMs", "requests", "connectGetInfo"],
  "ConformancePayload.ConnectGetInfo": ["queryParams"],
  ServerCompatRequest: ["protocol", "httpVersion", "useTls", "clientTlsCert", "messageReceiveLimit"],
  ServerCompatResponse: ["host", "port", "pemCert"],
};

type Rpc<K extends DescMethod["methodKind"]> = { methodKind: K; input: DescMessage; output: DescMessage };

/** ConformanceService's methods by local name and kind (loadSchema checks them). */
type ConformanceServiceDesc = GenService<{
  unary: Rpc<"unary">;
  serverStream: Rpc<"server_streaming">;
  clientStream: Rpc<"client_streaming">;
  bidiStream: Rpc<"bidi_streaming">;
  unimplemented: Rpc<"unary">;
  idempotentUnary: Rpc<"unary">;
}>;

const EXPECTED_METHODS: Record<keyof ConformanceServiceDesc["method"], DescMethod["methodKind"]> = {
  unary: "unary",
  serverStream: "server_streaming",
  clientStream: "client_streaming",
  bidiStream: "bidi_streaming",
  unimplemented: "unary",
  idempotentUnary: "unary",
};

interface Schema {
  service: DescService;
  typed: ConformanceServiceDesc;
  message(name: string): DescMessage;
}

function isConformanceService(service: DescService): service is DescService & ConformanceServiceDesc {
  return Object.entries(EXPECTED_METHODS).every(([name, kind]) => service.method[name]?.methodKind === kind);
}

function loadSchema(descriptorSetPath: string): Schema {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSetPath)));
  const message = (name: string) => {
    const desc = registry.getMessage(`${PACKAGE}.${name}`);
    if (!desc) throw new Error(`${descriptorSetPath} has no message ${PACKAGE}.${name}`);
    return desc;
  };
  for (const [name, fields] of Object.entries(EXPECTED_FIELDS)) {
    const desc = message(name);
    const missing = fields.filter((f) => !(f in desc.field));
    if (missing.length > 0) throw new Error(`${PACKAGE}.${name} has no field ${missing.join(", ")}: another version of the protos?`);
  }
  const service = registry.getService(SERVICE);
  if (!service) throw new Error(`${descriptorSetPath} has no service ${SERVICE}`);
  if (!isConformanceService(service)) throw new Error(`${SERVICE} does not have the methods ${JSON.stringify(EXPECTED_METHODS)}`);
  return { service, typed: service, message };
}

// ---------------------------------------------------------------------------
// ConformanceService, as connectrpc/conformance/v1/service.proto documents it.

type Init = MessageInitShape<DescMessage>;

function createConformanceService(schema: Schema): Partial<ServiceImpl<ConformanceServiceDesc>> {
  const { method } = schema.typed;
  const requestInfoDesc = schema.message("ConformancePayload.RequestInfo");
  const unaryInput = method.unary.input;
  const idempotentInput = method.idempotentUnary.input;
  const clientStreamInput = method.clientStream.input;
  const serverStreamInput = method.serverStream.input;
  const bidiInput = method.bidiStream.input;

  /** RequestInfo: what this server observed of the call (the first response carries it whole). */
  const requestInfo = (ctx: HandlerContext, requests: Any[]): Init => {
    const timeoutMs = ctx.timeoutMs();
    return {
      requestHeaders: headerList(ctx.requestHeader),
      timeoutMs: timeoutMs === undefined ? undefined : BigInt(Math.round(timeoutMs)),
      requests,
      // Only a Connect GET has query parameters that carry the request.
      connectGetInfo: ctx.requestMethod === "GET" ? { queryParams: queryParamList(ctx.url) } : undefined,
    };
  };

  /** The requested error, with RequestInfo appended to its details when the call sent no response. */
  const errorOf = (def: ErrorDefinition, info: Init | undefined): ConnectError => {
    if (!(def.code in Code) || def.code === 0) {
      return new ConnectError(`response definition asks for error code ${def.code}, which is no RPC code`, Code.InvalidArgument);
    }
    const error = new ConnectError(def.message ?? "", def.code as Code);
    // The requested details go out as they came (type name and bytes), then RequestInfo.
    error.details = def.details.map((any) => ({ type: any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1), value: any.value }));
    if (info) error.details.push({ desc: requestInfoDesc, value: info });
    return error;
  };

  const rejectRawResponse = (def: { rawResponse?: Message } | undefined) => {
    // The proto reserves raw_response for the reference server; a server under test may refuse it.
    if (def?.rawResponse) throw new ConnectError("raw_response is for the reference server only", Code.InvalidArgument);
  };

  /** Unary, IdempotentUnary and ClientStream: one response, or the requested error. */
  const answerOnce = async (ctx: HandlerContext, def: UnaryResponseDefinition | undefined, requests: Any[]): Promise<Init> => {
    rejectRawResponse(def);
    const info = requestInfo(ctx, requests);
    if (!def) return { payload: { requestInfo: info } };
    addHeaders(ctx.responseHeader, def.responseHeaders);
    addHeaders(ctx.responseTrailer, def.responseTrailers);
    await sleep(def.responseDelayMs, ctx.signal);
    if (def.response.case === "error") throw errorOf(def.response.value, info);
    return { payload: { data: def.response.case === "responseData" ? def.response.value : undefined, requestInfo: info } };
  };

  return {
    async unary(req, ctx) {
      return answerOnce(ctx, (req as UnaryShapedRequest).responseDefinition, [anyPack(unaryInput, req)]);
    },

    async idempotentUnary(req, ctx) {
      return answerOnce(ctx, (req as UnaryShapedRequest).responseDefinition, [anyPack(idempotentInput, req)]);
    },

    async clientStream(reqs, ctx) {
      const requests: Any[] = [];
      let def: UnaryResponseDefinition | undefined;
      for await (const req of reqs) {
        // Only the first message's definition counts.
        if (requests.length === 0) def = (req as UnaryShapedRequest).responseDefinition;
        requests.push(anyPack(clientStreamInput, req));
      }
      return answerOnce(ctx, def, requests);
    },

    async *serverStream(req, ctx) {
      const def = (req as StreamShapedRequest).responseDefinition;
      const requests = [anyPack(serverStreamInput, req)];
      if (!def) return;
      rejectRawResponse(def);
      addHeaders(ctx.responseHeader, def.responseHeaders);
      addHeaders(ctx.responseTrailer, def.responseTrailers);
      let sent = 0;
      for (const data of def.responseData) {
        await sleep(def.responseDelayMs, ctx.signal);
        yield { payload: { data, requestInfo: sent === 0 ? requestInfo(ctx, requests) : undefined } };
        sent++;
      }
      if (def.error) throw errorOf(def.error, sent === 0 ? requestInfo(ctx, requests) : undefined);
    },

    async *bidiStream(reqs, ctx) {
      let def: StreamResponseDefinition | undefined;
      let fullDuplex = false;
      let first = true;
      let sent = 0;
      // Full duplex: the requests since the last response; half duplex: all of them.
      let requests: Any[] = [];
      for await (const req of reqs) {
        requests.push(anyPack(bidiInput, req));
        if (first) {
          first = false;
          const shaped = req as StreamShapedRequest;
          def = shaped.responseDefinition;
          fullDuplex = shaped.fullDuplex === true;
          rejectRawResponse(def);
          if (def) {
            addHeaders(ctx.responseHeader, def.responseHeaders);
            addHeaders(ctx.responseTrailer, def.responseTrailers);
          }
        }
        if (!fullDuplex) continue;
        // One response per request; a request beyond the responses ends the stream (with the error, if any).
        if (!def || sent >= def.responseData.length) break;
        await sleep(def.responseDelayMs, ctx.signal);
        const info = sent === 0 ? requestInfo(ctx, requests) : { requests };
        yield { payload: { data: def.responseData[sent], requestInfo: info } };
        sent++;
        requests = [];
      }
      if (!def) return;
      // Half duplex: everything, now that the client is done; full duplex: what the requests did not use up.
      for (; sent < def.responseData.length; sent++) {
        await sleep(def.responseDelayMs, ctx.signal);
        yield { payload: { data: def.responseData[sent], requestInfo: sent === 0 ? requestInfo(ctx, requests) : undefined } };
      }
      if (def.error) throw errorOf(def.error, sent === 0 ? requestInfo(ctx, requests) : undefined);
    },

    // Unimplemented is deliberately left out: the router answers it with UNIMPLEMENTED.
  };
}

function addHeaders(target: Headers, headers: Header[]): void {
  for (const h of headers) for (const v of h.value) target.append(h.name, v);
}

/** Headers as the conformance Header list (fetch Headers joins repeated values with ", "; the runner splits them). */
function headerList(headers: Headers): Init[] {
  const list: Init[] = [];
  headers.forEach((value, name) => list.push({ name, value: [value] }));
  return list;
}

function queryParamList(url: string): Init[] {
  const byName = new Map<string, string[]>();
  for (const [name, value] of new URL(url).searchParams) {
    const values = byName.get(name) ?? [];
    values.push(value);
    byName.set(name, values);
  }
  return [...byName].map(([name, value]) => ({ name, value }));
}

/** Waits ms, or rejects as soon as the call is cancelled or its deadline passes. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(ConnectError.from(signal.reason));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(ConnectError.from(signal.reason));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------
// The runner's protocol: a size-delimited request on stdin, a response on stdout.

async function readDelimited(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  let buffered = Buffer.alloc(0);
  for await (const chunk of stream) {
    buffered = Buffer.concat([buffered, chunk as Buffer]);
    if (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32BE(0)) break;
  }
  if (buffered.length < 4 || buffered.length < 4 + buffered.readUInt32BE(0)) {
    throw new Error(`stdin ended after ${buffered.length} bytes, before a whole ServerCompatRequest`);
  }
  return buffered.subarray(4, 4 + buffered.readUInt32BE(0));
}

function delimited(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  out.set(bytes, 4);
  return out;
}

/** Without a receive limit, the largest message connect accepts at all. */
const NO_LIMIT = 0xffffffff;

async function main(): Promise<void> {
  const descriptorSet = process.argv[2] ?? ensureConformanceSuite((line) => process.stderr.write(`${line}\n`)).descriptorSet;
  const schema = loadSchema(descriptorSet);
  const compatRequest = fromBinary(schema.message("ServerCompatRequest"), await readDelimited(process.stdin)) as unknown as {
    useTls: boolean;
    clientTlsCert: Uint8Array;
    messageReceiveLimit: number;
  };
  // test/conformance/config.yaml declares no TLS, so the runner never asks for it.
  if (compatRequest.useTls || compatRequest.clientTlsCert.length > 0) throw new Error("this server under test speaks cleartext only (h2c, no TLS)");

  const logger = pino({ level: process.env.CONFORMANCE_LOG_LEVEL ?? "silent" }, pino.destination(2));
  const secret = () => randomBytes(32).toString("base64url");
  const server = await startRpcServer({
    host: "127.0.0.1",
    port: 0,
    maxRequestBytes: compatRequest.messageReceiveLimit > 0 ? compatRequest.messageReceiveLimit : NO_LIMIT,
    // Browsers' gRPC-Web and Connect calls come from other origins; the reference client may send one.
    corsOrigins: ["*"],
    services: [schema.service],
    routes: (router) => router.service(schema.typed, createConformanceService(schema)),
    policies: { [SERVICE]: "public" },
    // The suite compares error details exactly, and the chat API's RequestInfo detail is
    // not one it asked for; the request id still goes out as the x-request-id header.
    requestInfoInErrors: false,
    accessLog: false,
    auth: createAuthenticator({ jwtSecret: secret(), adminToken: secret(), defaultTokenTtlSeconds: 3600, maxTokenTtlSeconds: 86_400 }),
    metrics: createApiMetrics({ defaultMetrics: false }),
    logger,
  });

  const response = create(schema.message("ServerCompatResponse"), { host: "127.0.0.1", port: server.port });
  process.stdout.write(delimited(toBinary(schema.message("ServerCompatResponse"), response)));

  process.once("SIGTERM", () => {
    server.close(1000).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`server under test failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
