/**
 * FAST channels' write-behind log on NATS JetStream.
 *
 * append() publishes the record to `<prefix>.fastlog.ch.<channel>` with
 * JetStream's publish acknowledgement. The post path calls it before it
 * publishes the live event on the same connection, and NATS handles one
 * connection's messages in order, so by the time any gateway has the event
 * the server has the record: the API process may die right after delivering
 * and the message is still written. The sender is answered once the stream
 * acknowledges the record.
 *
 * Writers (one per API process unless turned off) share one durable pull
 * consumer of a work-queue stream: each record is written to the store by
 * one of them and removed once acknowledged after the store's durable write.
 * A writer that dies holding records leaves them to be redelivered after
 * ACK_WAIT; appending the same record twice is harmless (store contract).
 */
import {
  AckPolicy,
  DeliverPolicy,
  nanos,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JsMsg,
  type NatsConnection,
  type StreamConfig,
} from "nats";
import type { Logger } from "../../core/logger.js";
import type { FastLog } from "../fast-log.js";
import type { AppendResult, ChatStore, MessageRecord } from "../store.js";
import { decodeRecord, encodeRecord } from "./record-codec.js";

export const WRITER_CONSUMER = "writer";
/** How long a writer may hold a record before it is handed to another. */
const ACK_WAIT_MS = 30_000;
/** Records being written at once, across all writers. */
const MAX_ACK_PENDING = 2_048;
/** A retried post within this window is recognised by the stream itself. */
const DUPLICATE_WINDOW_MS = 120_000;

export interface JetStreamFastLogOptions {
  connection: NatsConnection;
  /** Names from the bus's subject scheme (bus/subjects.ts), handed in by the composition root. */
  names: FastLogNames;
  store: ChatStore;
  /** Stream copies in a NATS cluster. */
  replicas: number;
  maxAgeSeconds: number;
  /** Run a writer in this process. */
  writer: boolean;
  logger: Logger;
  /** Counts records: written by this process's writer, store write failed, written directly. */
  onRecord?: (outcome: "written" | "write_failed" | "direct") => void;
  /** A record this process's writer stored, with what the store logged for it (the post's seq). */
  onStored?: (result: AppendResult) => void;
}

export interface FastLogNames {
  /** The JetStream stream. */
  stream: string;
  /** The subject a channel's records are published on. */
  subjectOf(channelId: bigint): string;
  /** The subjects the stream captures (every channel's). */
  allSubjects: string;
}

export async function createJetStreamFastLog(options: JetStreamFastLogOptions): Promise<FastLog> {
  const { connection: nc, names, store, logger } = options;
  const stream = names.stream;
  const jsm = await nc.jetstreamManager().catch((err: unknown) => {
    throw new Error(`FAST channels need JetStream on the NATS servers (nats-server -js): ${String(err)}`, { cause: err });
  });
  const config: Partial<StreamConfig> & { name: string } = {
    name: stream,
    subjects: [names.allSubjects],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: options.replicas,
    max_age: nanos(options.maxAgeSeconds * 1000),
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
  };
  // Several API nodes start at once: adding an identical stream is a no-op;
  // one that exists with other settings is updated to these.
  try {
    await jsm.streams.add(config);
  } catch {
    await jsm.streams.update(stream, config);
  }
  const consumer = {
    durable_name: WRITER_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(ACK_WAIT_MS),
    max_ack_pending: MAX_ACK_PENDING,
  };
  try {
    await jsm.consumers.add(stream, consumer);
  } catch {
    await jsm.consumers.update(stream, WRITER_CONSUMER, consumer);
  }
  const js = nc.jetstream();

  let consuming: ConsumerMessages | undefined;
  let loop: Promise<void> | undefined;
  const writing = new Set<Promise<void>>();
  if (options.writer) {
    consuming = await (await js.consumers.get(stream, WRITER_CONSUMER)).consume({ max_messages: 512 });
    const write = async (msg: JsMsg) => {
      let record: MessageRecord;
      try {
        record = decodeRecord(msg.data);
      } catch (err) {
        logger.error({ err, seq: msg.seq }, "fast log: undecodable record dropped");
        msg.term();
        return;
      }
      try {
        const result = await store.appendMessage(record);
        msg.ack();
        options.onRecord?.("written");
        if (!result.duplicate) options.onStored?.(result);
      } catch (err) {
        options.onRecord?.("write_failed");
        logger.warn({ err, messageId: record.id, attempt: msg.info.redeliveryCount }, "fast log: store write failed; retrying");
        msg.nak(Math.min(30_000, 250 * 2 ** Math.min(msg.info.redeliveryCount, 7)));
      }
    };
    const source = consuming;
    loop = (async () => {
      for await (const msg of source) {
        const w = write(msg).finally(() => writing.delete(w));
        writing.add(w);
      }
    })().catch((err: unknown) => logger.error({ err }, "fast log writer stopped"));
  }

  const original = async (record: MessageRecord, seq: number): Promise<MessageRecord | undefined> => {
    // The first post of this key is in the store, or still in the stream.
    for (let i = 0; i < 100; i++) {
      const stored = await store.findMessageByClientMsgId(record.channelId, record.senderId, record.clientMsgId);
      if (stored) return stored;
      try {
        const pending = await jsm.streams.getMessage(stream, { seq });
        return decodeRecord(pending.data);
      } catch {
        // Written and removed between the two reads: look again.
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return undefined;
  };

  return {
    writesThrough: false,
    async append(record) {
      const key = record.clientMsgId === "" ? record.id.toString() : `${record.channelId}:${record.senderId}:${record.clientMsgId}`;
      let ack;
      try {
        ack = await js.publish(names.subjectOf(record.channelId), encodeRecord(record), { msgID: key });
      } catch (err) {
        // The log is unreachable: write through, so the answer still means durable.
        logger.warn({ err, messageId: record.id }, "fast log unavailable; writing to the store directly");
        options.onRecord?.("direct");
        return store.appendMessage(record);
      }
      if (!ack.duplicate) return { message: record, duplicate: false };
      const first = await original(record, ack.seq);
      if (!first) throw new Error(`fast log: original of repeated post ${key} not found`);
      return { message: first, duplicate: first.id !== record.id };
    },
    async close() {
      await consuming?.close();
      await loop;
      await Promise.all(writing);
    },
  };
}
