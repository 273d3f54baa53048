/**
 * The RPC layer's check of JSON input for non-canonical 64-bit integers
 * (core/canonical-json-ints.ts), before connect parses it: unary Connect
 * JSON bodies (read whole, within the size limit), Connect GET's `message`,
 * and every message of a JSON stream (Connect, gRPC and gRPC-Web envelopes,
 * scanned as they pass). Binary protobuf needs no check: its integers are
 * varints. Compressed bodies are checked after inflating them.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { describeNonCanonicalInt, findNonCanonicalInt } from "../core/canonical-json-ints.js";

const inflate = (bytes: Uint8Array, encoding: string | null): Uint8Array | undefined => {
  if (encoding === null || encoding === "" || encoding === "identity") return bytes;
  if (encoding === "gzip") return gunzipSync(bytes);
  if (encoding === "br") return brotliDecompressSync(bytes);
  return undefined; // unknown: connect refuses it itself
};

/** Throws INVALID_ARGUMENT for the first non-canonical 64-bit integer of one JSON message; anything unparsable is connect's to report. */
function check(desc: DescMessage, bytes: Uint8Array | undefined): void {
  if (!bytes) return;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    return;
  }
  const problem = findNonCanonicalInt(desc, json);
  if (problem) throw new ConnectError(describeNonCanonicalInt(problem), Code.InvalidArgument);
}

/**
 * Checks (or arranges to check) the request's JSON against the method's
 * input type. Returns the request to hand to connect: its body replayed
 * where it was read, failing with INVALID_ARGUMENT where a message is not
 * canonical (so that connect answers in the request's protocol). A Connect
 * GET, whose message is in its URL, is answered by the caller: the error is
 * returned instead.
 */
export async function guardJsonInts(
  input: DescMessage,
  req: UniversalServerRequest,
  readMaxBytes: number,
): Promise<UniversalServerRequest | ConnectError> {
  const contentType = req.header.get("content-type") ?? "";
  const source = req.body;
  // Always a byte stream from rpc/connect-node-adapter.ts (connect also allows a parsed JSON value).
  if (typeof source !== "object" || source === null || !(Symbol.asyncIterator in source)) return req;
  const stream = source as AsyncIterable<Uint8Array>;
  if (req.method === "GET") {
    const query = new URL(req.url).searchParams;
    if (query.get("encoding") !== "json") return req;
    const message = query.get("message") ?? "";
    const bytes = query.get("base64") === "1" ? Buffer.from(message, "base64url") : Buffer.from(message);
    try {
      check(input, inflate(bytes, query.get("compression")));
    } catch (err) {
      return ConnectError.from(err);
    }
    return req;
  }
  if (contentType.startsWith("application/json")) {
    const chunks: Uint8Array[] = [];
    let size = 0;
    const iterator = stream[Symbol.asyncIterator]();
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      chunks.push(next.value);
      size += next.value.length;
      // Over the limit: connect answers that; hand it everything, read and unread.
      if (size > readMaxBytes) return { ...req, body: replay(chunks, iterator) };
    }
    const body = Buffer.concat(chunks);
    try {
      check(input, inflate(body, req.header.get("content-encoding")));
    } catch (err) {
      return { ...req, body: failing(err) };
    }
    return { ...req, body: replay([body]) };
  }
  if (/^application\/(connect\+json|grpc\+json|grpc-web\+json)/.test(contentType)) {
    const encoding = req.header.get(contentType.startsWith("application/connect") ? "connect-content-encoding" : "grpc-encoding");
    return { ...req, body: scanEnvelopes(stream, (message, compressed) => check(input, compressed ? inflate(message, encoding) : message)) };
  }
  return req;
}

// eslint-disable-next-line require-yield
async function* failing(err: unknown): AsyncIterable<Uint8Array> {
  throw err;
}

async function* replay(chunks: Uint8Array[], rest?: AsyncIterator<Uint8Array>): AsyncIterable<Uint8Array> {
  yield* chunks;
  if (!rest) return;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}

/** Passes the body on unchanged while reading its envelopes (flags byte, 32-bit length, message) to check each message. */
async function* scanEnvelopes(
  body: AsyncIterable<Uint8Array>,
  onMessage: (message: Uint8Array, compressed: boolean) => void,
): AsyncIterable<Uint8Array> {
  let pending = Buffer.alloc(0);
  for await (const chunk of body) {
    pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      const length = pending.readUInt32BE(1);
      if (pending.length < 5 + length) break;
      onMessage(pending.subarray(5, 5 + length), (pending[0]! & 0x01) === 0x01);
      pending = pending.subarray(5 + length);
    }
    yield chunk;
  }
}
