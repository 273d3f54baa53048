/**
 * The delivery probe of bench:cluster, in a process of its own: one WebSocket
 * of a member of every channel, recording receive time minus the send time
 * carried in each message's text ("t:<ms since the epoch> ..."). Apart from
 * the driver, whose event loop paces the posts, so that a receipt waits for
 * no posting work (both read the same clock: timeOrigin + now()).
 *
 * IPC: { type: "open", url, token } → { type: "opened" } once the hello came;
 *      { type: "count", on } → { type: "counting" };
 *      { type: "stats" } → { type: "probe-stats", received, latencies };
 *      { type: "close" } → closes and exits.
 */
import { fromBinary } from "@bufbuild/protobuf";
import WebSocket from "ws";
import { ServerFrameSchema } from "../../gen/chat/v1/frame_pb.js";
import { nowMs } from "./stats.js";

let ws: WebSocket | undefined;
let counting = false;
const latencies: number[] = [];

function send(message: object): void {
  process.send?.(message);
}

process.on("message", (m: { type: string; url?: string; token?: string; on?: boolean }) => {
  switch (m.type) {
    case "open": {
      const socket = new WebSocket(m.url!, ["chat.v1.proto"], { headers: { authorization: `Bearer ${m.token}` } });
      ws = socket;
      socket.on("message", (data: Buffer) => {
        const received = nowMs();
        if (!counting) return;
        const f = fromBinary(ServerFrameSchema, new Uint8Array(data));
        if (f.frame.case !== "event" || f.frame.value.payload.case !== "messagePosted") return;
        const text = f.frame.value.payload.value.message?.text ?? "";
        if (text.startsWith("t:")) latencies.push(received - Number(text.slice(2, text.indexOf(" "))));
      });
      socket.once("message", () => send({ type: "opened" }));
      socket.once("error", (err) => send({ type: "error", message: String(err) }));
      socket.once("unexpected-response", (_req, res) => send({ type: "error", message: `probe upgrade rejected: HTTP ${res.statusCode}` }));
      break;
    }
    case "count":
      counting = m.on === true;
      send({ type: "counting" });
      break;
    case "stats":
      send({ type: "probe-stats", received: latencies.length, latencies });
      break;
    case "close":
      ws?.terminate();
      process.exit(0);
  }
});
