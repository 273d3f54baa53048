/**
 * Where FAST channels' messages go to become durable. The post path hands a
 * record to the log before it publishes the event, and answers the sender
 * once the log says the record is safe:
 * - embedded: the log is the store itself (the record is durable when the
 *   store's group commit has reached the disk);
 * - scale-out: a JetStream stream (store/jetstream/jetstream-fast-log.ts), drained into
 *   the store by writers on the API nodes, so the API process that delivered
 *   a message may die at any point after that without losing it.
 */
import type { ChangeRecord, ChatStore, MessageRecord } from "./store.js";

export interface FastLog {
  /**
   * True when append() writes to the store itself and answers with what the
   * store logged (the post's seq); false when records reach the store later,
   * and the post's change is logged then.
   */
  readonly writesThrough: boolean;
  /**
   * Makes one record durable. When the record repeats an earlier post's
   * idempotency key, resolves to that post's message with duplicate = true.
   * `changes` is what the store logged, when it wrote through.
   */
  append(record: MessageRecord): Promise<{ message: MessageRecord; duplicate: boolean; changes?: ChangeRecord[] }>;
  /** Stops this process's writers after what they hold; unwritten records stay in the log. */
  close(): Promise<void>;
}

export function createStoreFastLog(store: ChatStore): FastLog {
  return {
    writesThrough: true,
    append: (record) => store.appendMessage(record),
    close: async () => {},
  };
}
