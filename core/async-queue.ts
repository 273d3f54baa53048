/**
 * A bounded queue read as an async iterable: producers push synchronously,
 * one consumer awaits. Overflowing the bound or fail() ends the iteration
 * with an error; an aborted signal ends it quietly.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private waiter: (() => void) | undefined;
  private error: unknown;
  private ended = false;

  constructor(
    private readonly max: number,
    private readonly onOverflow: () => unknown,
  ) {}

  push(item: T): void {
    if (this.ended || this.error !== undefined) return;
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

  end(): void {
    this.ended = true;
    this.wake();
  }

  async *iterate(signal: AbortSignal): AsyncGenerator<T> {
    const onAbort = () => this.end();
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        if (this.error !== undefined) throw this.error;
        const item = this.items.shift();
        if (item !== undefined) {
          yield item;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.waiter = resolve));
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.iterate(new AbortController().signal);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
