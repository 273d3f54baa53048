/**
 * The one vocabulary of error codes a client meets, whatever carries it: an
 * RPC's status (gRPC numbers, Connect names), a WebSocket error frame
 * (chat.v1.ErrorCode, same numbers), an error inside a stream's answer. The
 * numbers are gRPC's; the names are Connect's; what to do is ours. The
 * README's table is checked against this one (test/api/error-codes.test.ts),
 * and metrics and logs name codes by `name`.
 */
import { Code } from "@connectrpc/connect";

export interface ErrorCodeEntry {
  readonly code: Code;
  /** Connect's name, as in a Connect JSON error body and in metric labels. */
  readonly name: string;
  /** Whether the same request may succeed if sent again, unchanged. */
  readonly retry: "yes, with backoff" | "no" | "after a new token" | "after waiting";
  /** When this project answers it. */
  readonly when: string;
}

export const ERROR_CODES: readonly ErrorCodeEntry[] = [
  { code: Code.Canceled, name: "canceled", retry: "no", when: "the client canceled the call" },
  { code: Code.Unknown, name: "unknown", retry: "no", when: "never on purpose (an error without a better code)" },
  { code: Code.InvalidArgument, name: "invalid_argument", retry: "no", when: "bad input; the message starts with the field's name; nothing was changed" },
  { code: Code.DeadlineExceeded, name: "deadline_exceeded", retry: "yes, with backoff", when: "the client's deadline passed (a keyed post may still have been stored: retry with the same key)" },
  { code: Code.NotFound, name: "not_found", retry: "no", when: "no such channel, user, member or message (or a deleted message), or one the caller may not see" },
  { code: Code.AlreadyExists, name: "already_exists", retry: "no", when: "the email or channel name is taken" },
  { code: Code.PermissionDenied, name: "permission_denied", retry: "no", when: "the caller may not do this (not a member; a user token on an admin method)" },
  { code: Code.ResourceExhausted, name: "resource_exhausted", retry: "after waiting", when: "a limit: request size, post rate, a stream read too slowly, 50 emoji on a message, 100 pins in a channel" },
  { code: Code.FailedPrecondition, name: "failed_precondition", retry: "no", when: "not in this state (joining or leaving a direct message; changing or replying to an EPHEMERAL message)" },
  { code: Code.Aborted, name: "aborted", retry: "yes, with backoff", when: "a conflict; retry" },
  { code: Code.OutOfRange, name: "out_of_range", retry: "no", when: "a value outside its range" },
  { code: Code.Unimplemented, name: "unimplemented", retry: "no", when: "no such method" },
  { code: Code.Internal, name: "internal", retry: "no", when: "a server bug; the operator's log has it under the request id" },
  { code: Code.Unavailable, name: "unavailable", retry: "yes, with backoff", when: "the store or bus is away, or the node is shutting down; nothing was done (keyed posts are idempotent)" },
  { code: Code.DataLoss, name: "data_loss", retry: "no", when: "never on purpose" },
  { code: Code.Unauthenticated, name: "unauthenticated", retry: "after a new token", when: "the token is missing, forged, expired, or names no user" },
];

const NAMES = new Map<Code, string>(ERROR_CODES.map((e) => [e.code, e.name]));

/** Connect's name of a code ("ok" for success), for metric labels and logs. */
export function codeName(code: Code | "ok"): string {
  return code === "ok" ? "ok" : (NAMES.get(code) ?? String(code));
}
