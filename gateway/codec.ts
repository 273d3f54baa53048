/**
 * WebSocket frame encoding: binary protobuf by default, canonical protobuf
 * JSON in text frames for clients that asked for it.
 */
import { fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import { ClientFrameSchema, ServerFrameSchema, type ClientFrame, type ServerFrame } from "../gen/chat/v1/frame_pb.js";

export type WireFormat = "binary" | "json";

/** The subprotocol that selects JSON; "chat.v1" or "chat.v1.proto" select binary. */
export const JSON_SUBPROTOCOL = "chat.v1.json";
export const BINARY_SUBPROTOCOLS = ["chat.v1.proto", "chat.v1"];

export function encodeServerFrame(frame: ServerFrame, format: WireFormat): Uint8Array | string {
  return format === "binary" ? toBinary(ServerFrameSchema, frame) : toJsonString(ServerFrameSchema, frame);
}

/** Decodes a client frame in whichever format it came (text frames are JSON). Throws on garbage. */
export function decodeClientFrame(data: ArrayBuffer, isBinary: boolean): ClientFrame {
  return isBinary
    ? fromBinary(ClientFrameSchema, new Uint8Array(data))
    : fromJsonString(ClientFrameSchema, Buffer.from(data).toString("utf8"));
}
