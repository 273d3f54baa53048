/**
 * WebSocket frame encoding: binary protobuf by default, canonical protobuf
 * JSON in text frames for clients that asked for it.
 */
import { fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import { describeNonCanonicalInt, findNonCanonicalInt } from "../core/canonical-json-ints.js";
import { ClientFrameSchema, ServerFrameSchema, type ClientFrame, type ServerFrame } from "../gen/chat/v1/frame_pb.js";

export type WireFormat = "binary" | "json";

/** The subprotocol that selects JSON; "chat.v1" or "chat.v1.proto" select binary. */
export const JSON_SUBPROTOCOL = "chat.v1.json";
export const BINARY_SUBPROTOCOLS = ["chat.v1.proto", "chat.v1"];

export function encodeServerFrame(frame: ServerFrame, format: WireFormat): Uint8Array | string {
  return format === "binary" ? toBinary(ServerFrameSchema, frame) : toJsonString(ServerFrameSchema, frame);
}

/**
 * Decodes a client frame in whichever format it came (text frames are JSON).
 * Throws on garbage, and on a 64-bit id that is not a canonical decimal
 * ("0x10" and " 12" would otherwise name channels 16 and 12).
 */
export function decodeClientFrame(data: ArrayBuffer, isBinary: boolean): ClientFrame {
  if (isBinary) return fromBinary(ClientFrameSchema, new Uint8Array(data));
  const text = Buffer.from(data).toString("utf8");
  const problem = findNonCanonicalInt(ClientFrameSchema, JSON.parse(text));
  if (problem) throw new Error(describeNonCanonicalInt(problem));
  // Parsed again by protobuf-es, which also refuses duplicate keys.
  return fromJsonString(ClientFrameSchema, text);
}
