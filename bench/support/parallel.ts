/** Bounded concurrency for seeding and load loops (why: the drivers share one helper instead of each its own). */

/** Runs fn(0..n-1) with at most `concurrency` calls in flight. */
export async function inParallel(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}
