/**
 * Reading one message to act on it (edit, delete, react, pin, reply). In
 * FAST channels whose write-behind log reaches the store later (scale-out),
 * a message posted a moment ago may not be stored yet: the read waits for its
 * write, briefly, rather than answering NOT_FOUND for a message its sender
 * was already told is safe.
 */
import { timestampOfId } from "../../core/ids.js";
import type { ChannelRecord, StoredMessage } from "../../store/store.js";
import type { ServiceDeps } from "../deps.js";

/** How long a FAST message may take to reach the store before a change to it gives up (UNAVAILABLE then would be a lie: NOT_FOUND). */
export const FAST_WRITE_WAIT_MS = 5_000;
const POLL_MS = 25;
/** Only messages this young can still be on their way. */
const IN_FLIGHT_WINDOW_MS = 5 * 60_000;

export interface StoredMessages {
  /** The message of this channel, deleted or not; undefined if it does not exist. */
  find(channel: ChannelRecord, id: bigint): Promise<StoredMessage | undefined>;
}

export function createStoredMessages(deps: Pick<ServiceDeps, "store" | "fastLog" | "now">): StoredMessages {
  const { store, fastLog, now } = deps;
  return {
    async find(channel, id) {
      let message = await store.getMessage(channel.id, id);
      if (message || channel.delivery !== "fast" || fastLog.writesThrough) return message;
      const mayBeInFlight = now() - timestampOfId(id) < IN_FLIGHT_WINDOW_MS && timestampOfId(id) <= now() + 1_000;
      if (!mayBeInFlight) return undefined;
      const deadline = performance.now() + FAST_WRITE_WAIT_MS;
      while (!message && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        message = await store.getMessage(channel.id, id);
      }
      return message;
    },
  };
}
