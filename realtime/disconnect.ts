/**
 * Every way a client's live feed ends, in one table: the WebSocket close code
 * and the reason sent with it, whether the client should reconnect (and
 * resume from its cursors), the label of the closes metric, and the status
 * an EventService.Subscribe stream ends with for the same cause. The
 * gateway closes sockets only with these entries, the event stream ends
 * only with these statuses, and the README's close-code table is checked
 * against this one (test/gateway/disconnect.test.ts).
 */
import { Code, ConnectError } from "@connectrpc/connect";

export interface Disconnect {
  /** The WebSocket close code. */
  readonly code: number;
  /** The close reason sent to the client (at most 123 bytes), or the stream's error message. */
  readonly reason: string;
  /** Label of the gateway's closes metric. */
  readonly metric: string;
  /** Whether the client should reconnect and resume from its cursors. */
  readonly reconnect: boolean;
  /** Why it happens, for the protocol docs. */
  readonly why: string;
  /** What the client does, for the protocol docs. */
  readonly advice: string;
  /** The status an EventService stream ends with for the same cause; absent where streams cannot end so. */
  readonly streamCode?: Code;
}

export const DISCONNECT = {
  normal: {
    code: 1000,
    reason: "",
    metric: "normal",
    reconnect: false,
    why: "the client closed the socket",
    advice: "nothing",
  },
  shutdown: {
    code: 1001,
    reason: "server shutting down",
    metric: "going away",
    reconnect: true,
    why: "the gateway (or, for a stream, the API node) is shutting down",
    advice: "reconnect (another gateway) and resume",
    streamCode: Code.Unavailable,
  },
  malformed: {
    code: 1008,
    reason: "too many malformed frames",
    metric: "malformed frames",
    reconnect: false,
    why: "too many malformed frames",
    advice: "fix the client",
  },
  frameTooBig: {
    code: 1009,
    reason: "frame larger than max_frame_bytes",
    metric: "frame too big",
    reconnect: false,
    why:
      "a frame over `max_frame_bytes` (`CHAT_GATEWAY_MAX_FRAME_BYTES`, 64 KiB); frames over 16 times that are dropped without a close frame (1006)",
    advice: "send smaller frames",
  },
  startFailed: {
    code: 1011,
    reason: "could not load your channels",
    metric: "start failed",
    reconnect: true,
    why: "the gateway could not load the user's channels from the API",
    advice: "reconnect with backoff and resume",
  },
  resync: {
    code: 1012,
    reason: "events may have been missed: reconnect and resume",
    metric: "resync",
    reconnect: true,
    why: "the bus (NATS) reconnected: live delivery may have missed events",
    advice: "reconnect and resume",
    streamCode: Code.Unavailable,
  },
  tokenExpired: {
    code: 4001,
    reason: "token expired",
    metric: "token expired",
    reconnect: true,
    why: "the token expired",
    advice: "get a new token, reconnect, resume",
    streamCode: Code.Unauthenticated,
  },
  unauthenticated: {
    code: 4003,
    reason: "token not accepted",
    metric: "unauthenticated",
    reconnect: false,
    why: "the token is valid but names no user (never created, or gone)",
    advice: "get a token of an existing user",
    streamCode: Code.Unauthenticated,
  },
  tooSlow: {
    code: 4008,
    reason: "too slow: reconnect and resume",
    metric: "too slow",
    reconnect: true,
    why:
      "too slow: more than `CHAT_GATEWAY_MAX_BACKPRESSURE_BYTES` waited for this socket, or more events than a session may hold piled up (the gateway never buffers without bound and never skips an event)",
    advice: "reconnect and resume",
    streamCode: Code.ResourceExhausted,
  },
  abnormal: {
    code: 1006,
    reason: "",
    metric: "abnormal",
    reconnect: true,
    why:
      "no close frame: network loss, idle timeout (`CHAT_GATEWAY_IDLE_TIMEOUT_SECONDS`; the server pings, so live sockets stay open)",
    advice: "reconnect and resume",
  },
} as const satisfies Record<string, Disconnect>;

export type DisconnectName = keyof typeof DISCONNECT;

const BY_CODE = new Map<number, Disconnect>(Object.values(DISCONNECT).map((d) => [d.code, d]));

/** The closes metric's label for a close code, whoever closed. */
export function closeLabel(code: number): string {
  return BY_CODE.get(code)?.metric ?? String(code);
}

/** The error an event stream ends with for one of the causes it shares with the socket. */
export function streamEnd(d: Disconnect & { streamCode: Code }, detail?: string): ConnectError {
  return new ConnectError(detail === undefined ? d.reason : `${d.reason} (${detail})`, d.streamCode);
}
