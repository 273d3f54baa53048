/**
 * A bounded queue read as an async iterable: producers push synchronously,
 * one consumer awaits. Two ways to bound it:
 * - a producer that must never lose an item waits for `room()` before each
 *   push (a stream of posts waits for its client to read the answers);
 * - a producer that must not wait pushes at will, and overflowing the bound
 *   ends the iteration with onOverflow's error (a slow event stream).
 * `end()` ends the iteration after the queued items (with an error, that
 * error comes after them), `fail()` ends it at once, and an aborted signal
 * ends it quietly.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private waiter: (() => void) | undefined;
  private roomWaiters: Array<() => void> = [];
  private error: unknown;
  private endError: unknown;
  private ended = false;

  constructor(
    private readonly max: number,
    private readonly onOverflow: () => unknown = () => new Error(`queue overflow: more than ${max} items`),
  ) {}

  /** Ended or failed: nothing more will be taken (the consumer may also have gone). */
  get closed(): boolean {
    return this.ended || this.error !== undefined;
  }

  /** Resolves once a push would not overflow, or once the queue has ended (a push is then ignored). */
  async room(): Promise<void> {
    while (this.items.length >= this.max && !this.closed) await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
  }

  push(item: T): void {
    if (this.closed) return;
    if (this.items.length >= this.max) {
      this.fail(this.onOverflow());
      return;
    }
    this.items.push(item);
    this.wake();
  }

  fail(error: unknown): void {
    if (this.error !== undefined) return;
    this.error = error;
    this.wake();
  }

  /** No more items; the consumer gets the queued ones, then error if one is given. */
  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    this.wake();
  }

  async *iterate(signal: AbortSignal): AsyncGenerator<T> {
    const onAbort = () => this.fail(ABORTED);
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        if (this.error === ABORTED) return;
        if (this.error !== undefined) throw this.error;
        if (this.items.length > 0) {
          const item = this.items.shift()!;
          this.wakeRoom();
          yield item;
          continue;
        }
        if (this.ended) {
          if (this.endError !== undefined) throw this.endError;
          return;
        }
        await new Promise<void>((resolve) => (this.waiter = resolve));
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      // The consumer is gone: nothing more will be read, so no producer may wait.
      this.ended = true;
      this.wakeRoom(true);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.iterate(new AbortController().signal);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
    if (this.closed) this.wakeRoom(true);
  }

  private wakeRoom(all = false): void {
    const n = all ? this.roomWaiters.length : Math.min(this.roomWaiters.length, this.max - this.items.length);
    for (const resolve of this.roomWaiters.splice(0, n)) resolve();
  }
}

/** Marks an iteration ended by its signal: it returns quietly, whatever was queued. */
const ABORTED = Symbol("aborted");
