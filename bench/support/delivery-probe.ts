/**
 * The delivery probe of bench:cluster, in a process of its own: one WebSocket
 * of a member of every channel, recording receive time minus the send time
 * carried in each message's text ("t:<ms since the epoch> ..."). Apart from
 * the driver, whose event loop paces the posts, so that a receipt waits for
 * no posting work (both read the same clock: timeOrigin + now()).
 *
 * Each latency is also split at the API's accept time, the millisecond in the
 * message id (floored, so the split is good to 1 ms): send → accept is the
 * client's HTTP/2 stream and the API's event loop; accept → receive is the
 * durable write, the bus, the gateway and the kernel.
 *
 * IPC: { type: "open", url, token } → { type: "opened" } once the hello came;
 *      { type: "count", on, reset? } → { type: "counting" } (reset: forget what was recorded);
 *      { type: "stats" } → { type: "probe-stats", received, latencies, beforeAccept, afterAccept };
 *      { type: "close" } → closes and exits.
 */
import { fromBinary } from "@bufbuild/protobuf";
import WebSocket from "ws";
import { timestampOfId } from "../../core/ids.js";
import { ServerFrameSchema } from "../../gen/chat/v1/frame_pb.js";
import { nowMs } from "./stats.js";

let ws: WebSocket | undefined;
let counting = false;
const latencies: number[] = [];
const beforeAccept: number[] = [];
const afterAccept: number[] = [];

function send(message: object): void {
  process.send?.(message);
}

process.on("message", (m: { type: string; url?: string; token?: string; on?: boolean; reset?: boolean }) => {
  switch (m.type) {
    case "open": {
      const socket = new WebSocket(m.url!, ["chat.v1.proto"], { headers: { authorization: `Bearer ${m.token}` } });
      ws = socket;
      socket.on("message", (data: Buffer) => {
        const received = nowMs();
        if (!counting) return;
        const f = fromBinary(ServerFrameSchema, new Uint8Array(data));
        if (f.frame.case !== "event" || f.frame.value.payload.case !== "messagePosted") return;
        const message = f.frame.value.payload.value.message;
        const text = message?.text ?? "";
        if (!text.startsWith("t:")) return;
        const sent = Number(text.slice(2, text.indexOf(" ")));
        const accepted = timestampOfId(message!.id);
        latencies.push(received - sent);
        beforeAccept.push(accepted - sent);
        afterAccept.push(received - accepted);
      });
      socket.once("message", () => send({ type: "opened" }));
      socket.once("error", (err) => send({ type: "error", message: String(err) }));
      socket.once("unexpected-response", (_req, res) => send({ type: "error", message: `probe upgrade rejected: HTTP ${res.statusCode}` }));
      break;
    }
    case "count":
      counting = m.on === true;
      if (m.reset) for (const a of [latencies, beforeAccept, afterAccept]) a.length = 0;
      send({ type: "counting" });
      break;
    case "stats":
      send({ type: "probe-stats", received: latencies.length, latencies, beforeAccept, afterAccept });
      break;
    case "close":
      ws?.terminate();
      process.exit(0);
  }
});
