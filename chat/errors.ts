/** Maps store errors to RPC status codes, keeping the original as cause. */
import { Code, ConnectError } from "@connectrpc/connect";
import { AlreadyExistsError, LimitExceededError, NotFoundError, StoreUnavailableError } from "../store/store.js";

export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  // A reply's root vanished between the check and the write: the field was bad after all.
  if (err instanceof NotFoundError && err.entity === "thread_root_id") {
    return new ConnectError("thread_root_id: no such message in this channel", Code.InvalidArgument, undefined, undefined, err);
  }
  if (err instanceof NotFoundError) return new ConnectError(err.message, Code.NotFound, undefined, undefined, err);
  if (err instanceof LimitExceededError) return new ConnectError(err.message, Code.ResourceExhausted, undefined, undefined, err);
  if (err instanceof AlreadyExistsError) {
    return new ConnectError(err.message, Code.AlreadyExists, undefined, undefined, err);
  }
  if (err instanceof StoreUnavailableError) {
    // The cause (driver, hosts) is for the operator's log, not for clients.
    return new ConnectError("the store is temporarily unavailable; retry", Code.Unavailable, undefined, undefined, err);
  }
  // Anything else is a bug or an outage: say so without leaking internals.
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

export const notFound = (what: string) => new ConnectError(`${what} not found`, Code.NotFound);
export const permissionDenied = (why: string) => new ConnectError(why, Code.PermissionDenied);
export const failedPrecondition = (why: string) => new ConnectError(why, Code.FailedPrecondition);
