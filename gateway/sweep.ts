/**
 * One timer for all sockets (not one per socket): the backpressure cut-off
 * every tick, token expiry and the end of start-up holds once a second.
 *
 * A socket's backlog grows only by what is queued to it. So while the
 * fullest backlog the last full check saw, plus every byte queued to any
 * socket since, stays within the limit, no socket can be over it, and the
 * check (a native call per socket, ~1.3 % of a core per 16,000 idle sockets
 * every 100 ms) is skipped: an idle or lightly loaded gateway reads backlogs
 * rarely, a busy one as before. (uWS's own limit, four times higher, closes
 * a socket meanwhile filled by anything not counted here, such as pongs.)
 */
import { DISCONNECT } from "../realtime/disconnect.js";
import type { Connection } from "./connection.js";

/** How often sockets are checked for backpressure over the limit. */
export const BACKPRESSURE_SWEEP_MS = 100;

export interface SweepOptions {
  connections: ReadonlySet<Connection>;
  /** Bytes queued since the last full check; the sweep resets it after each. */
  outbound: { bytes: number };
  maxBackpressureBytes: number;
}

/** Starts the sweep; returns its stop. */
export function startSweep({ connections, outbound, maxBackpressureBytes }: SweepOptions): () => void {
  let ticks = 0;
  let fullestAtCheck = 0;
  const timer = setInterval(() => {
    const slow = ++ticks % Math.round(1000 / BACKPRESSURE_SWEEP_MS) === 0;
    const check = fullestAtCheck + outbound.bytes > maxBackpressureBytes;
    if (!check && !slow) return;
    const now = Date.now();
    let fullest = 0;
    for (const c of connections) {
      if (!c.ws) continue;
      if (check) {
        const backlog = c.ws.getBufferedAmount();
        if (backlog > maxBackpressureBytes) {
          c.cutOff("backpressure");
          continue;
        }
        if (backlog > fullest) fullest = backlog;
      }
      if (!slow) continue;
      if (c.user.expiresAt !== undefined && c.user.expiresAt <= now) c.close(DISCONNECT.tokenExpired);
      else if (c.holdUntil !== 0 && c.holdUntil <= now) {
        c.holdUntil = 0;
        c.session.releaseAll();
      }
    }
    if (check) {
      fullestAtCheck = fullest;
      outbound.bytes = 0;
    }
  }, BACKPRESSURE_SWEEP_MS);
  timer.unref();
  return () => clearInterval(timer);
}
