/**
 * Channels as uWebSockets.js topics: one topic per channel and wire format,
 * one bus subscription per channel with at least one local socket (through
 * the Fanout), and each event encoded once per format and published to the
 * topic, whatever the number of sockets.
 */
import type { TemplatedApp, WebSocket } from "uWebSockets.js";
import type { EventListener, Fanout } from "../bus/fanout.js";
import { timestampOfId } from "../core/ids.js";
import type { GatewayMetrics } from "../core/metrics.js";
import type { Event } from "../gen/chat/v1/event_pb.js";
import { frame } from "../realtime/event-session.js";
import { encodeServerFrame, type WireFormat } from "./codec.js";

const FORMATS = ["binary", "json"] as const;

const topicOf = (channelId: bigint, format: WireFormat) => `${channelId}.${format === "binary" ? "b" : "j"}`;

/** Bytes of one encoded frame. */
export const byteSize = (bytes: Uint8Array | string) => (typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.length);

export interface Topics {
  /** Subscribes one socket to a channel's topic; false if it already was. */
  follow(ws: WebSocket<unknown>, channelId: bigint, format: WireFormat): boolean;
  /** Unsubscribes one socket (undefined: it closed, and uWS dropped its topics itself). */
  unfollow(ws: WebSocket<unknown> | undefined, channelId: bigint, format: WireFormat): void;
  /**
   * The id every local session of the channel shares: sessions keep the
   * topic's bigint, one per channel, rather than one per socket from each read.
   */
  canonicalId(channelId: bigint): bigint;
  /** Bytes queued to sockets (send and publish) since the sweep last read every socket's backlog. */
  readonly outbound: { bytes: number };
}

interface Topic {
  channelId: bigint;
  sockets: number;
  listener: EventListener;
}

export function createTopics(app: TemplatedApp, fanout: Fanout, metrics: GatewayMetrics): Topics {
  const topics = new Map<bigint, Topic>();
  const outbound = { bytes: 0 };

  const publish = (channelId: bigint, event: Event) => {
    const f = frame({ case: "event", value: event });
    let delivered = 0;
    for (const format of FORMATS) {
      const topic = topicOf(channelId, format);
      const n = app.numSubscribers(topic);
      if (n === 0) continue;
      const bytes = encodeServerFrame(f, format);
      app.publish(topic, bytes, format === "binary");
      delivered += n;
      const size = n * byteSize(bytes);
      outbound.bytes += size;
      metrics.bytesOut.inc(size);
    }
    if (delivered === 0) return;
    metrics.framesOut.inc({ kind: event.payload.case ?? "event" }, delivered);
    if (event.payload.case === "messagePosted" && event.payload.value.message) {
      metrics.deliveryLatency.observe((Date.now() - timestampOfId(event.payload.value.message.id)) / 1000);
    }
  };

  return {
    outbound,
    canonicalId: (channelId) => topics.get(channelId)?.channelId ?? channelId,
    follow(ws, channelId, format) {
      const topic = topicOf(channelId, format);
      if (ws.isSubscribed(topic)) return false;
      ws.subscribe(topic);
      let entry = topics.get(channelId);
      if (!entry) {
        entry = { channelId, sockets: 0, listener: (event: Event) => publish(channelId, event) };
        fanout.watchChannel(channelId, entry.listener);
        topics.set(channelId, entry);
      }
      entry.sockets++;
      return true;
    },
    unfollow(ws, channelId, format) {
      if (ws && !ws.unsubscribe(topicOf(channelId, format))) return;
      const entry = topics.get(channelId);
      if (entry && --entry.sockets === 0) {
        fanout.unwatchChannel(channelId, entry.listener);
        topics.delete(channelId);
      }
    },
  };
}
