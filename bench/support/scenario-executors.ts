/**
 * k6's executors, run inside one load-generator process for its share of the
 * load: with W processes, process w owns the VUs whose 0-based id is w modulo W
 * and, for arrival rates, the k-th iterations with k = w modulo W. All
 * processes start at the same instant of the shared monotonic clock.
 */
import { builtin, now } from "./scenario-metrics.js";
import { parseDuration, sleep, type Options, type VU, type WorkerInfo } from "./scenario.js";

export type IterationFn = (vu: VU) => Promise<void> | void;

export interface ExecutorRun {
  /** Iterations still running when the graceful stop ran out. */
  interrupted: number;
}

let errorsLogged = 0;
function logIterationError(worker: WorkerInfo, err: unknown): void {
  if (errorsLogged++ < 5) {
    console.error(`[worker ${worker.index}] iteration failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (errorsLogged === 5) console.error(`[worker ${worker.index}] (further iteration errors are counted, not printed)`);
  }
}

async function iterate(fn: IterationFn, vu: VU): Promise<void> {
  const t0 = now();
  try {
    await fn(vu);
  } catch (err) {
    builtin.iterationErrors.add(1);
    logIterationError(vu.worker, err);
  }
  builtin.iterationDuration.add(now() - t0);
  builtin.iterations.add(1);
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** How many of the global VU ids 1..target belong to this worker. */
function localShare(target: number, w: WorkerInfo): number {
  return target > w.index ? Math.floor((target - w.index - 1) / w.count) + 1 : 0;
}

interface Looping {
  vu: VU;
  ctrl: AbortController;
  done: Promise<void>;
  finished: boolean;
}

/**
 * Runs this worker's share of the executor from startAt (shared clock) until
 * the end of its duration plus graceful stop, or until stop aborts.
 */
export async function runExecutor(options: Options, fn: IterationFn, worker: WorkerInfo, startAt: number, stop: AbortSignal): Promise<ExecutorRun> {
  const gracefulStop = parseDuration(options.gracefulStop ?? "10s");
  let iterationCounter = 0;
  const nextInTest = () => iterationCounter++ * worker.count + worker.index;
  const newVu = (localIndex: number, signal: AbortSignal): VU => ({
    id: localIndex * worker.count + worker.index + 1,
    iteration: 0,
    iterationInTest: 0,
    signal,
    state: {},
    worker,
  });

  const wait = startAt - now();
  if (wait > 0) await sleep(wait, stop);
  const t0 = now();

  // VU-based executors: each VU loops over iterations until its signal aborts.
  const looping = new Map<number, Looping>();
  const stopping = new Set<Looping>();
  const startLoop = (localIndex: number) => {
    const ctrl = new AbortController();
    const vu = newVu(localIndex, ctrl.signal);
    const entry: Looping = { vu, ctrl, done: Promise.resolve(), finished: false };
    entry.done = (async () => {
      while (!ctrl.signal.aborted && !stop.aborted) {
        vu.iterationInTest = nextInTest();
        await iterate(fn, vu);
        vu.iteration++;
        await tick();
      }
      entry.finished = true;
    })();
    looping.set(localIndex, entry);
  };
  const stopLoop = (localIndex: number) => {
    const entry = looping.get(localIndex);
    if (!entry) return;
    looping.delete(localIndex);
    entry.ctrl.abort();
    stopping.add(entry);
    void entry.done.then(() => stopping.delete(entry));
  };
  const finishLoops = async (): Promise<number> => {
    for (const i of [...looping.keys()]) stopLoop(i);
    const all = [...stopping];
    await Promise.race([Promise.all(all.map((e) => e.done)), sleep(gracefulStop)]);
    return all.filter((e) => !e.finished).length;
  };
  const vusGauge = (n: number) => builtin.vus.add(n);

  switch (options.executor) {
    case "constant-vus": {
      const n = localShare(options.vus, worker);
      builtin.vusMax.add(n);
      for (let i = 0; i < n; i++) startLoop(i);
      vusGauge(n);
      await sleep(parseDuration(options.duration) - (now() - t0), stop);
      const interrupted = await finishLoops();
      vusGauge(0);
      builtin.interruptedIterations.add(interrupted);
      return { interrupted };
    }

    case "ramping-vus": {
      const start = options.startVUs ?? 0;
      const stages = options.stages.map((s) => ({ ms: parseDuration(s.duration), target: s.target }));
      const total = stages.reduce((a, s) => a + s.ms, 0);
      const rampDownGrace = parseDuration(options.gracefulRampDown ?? "10s");
      builtin.vusMax.add(localShare(Math.max(start, ...stages.map((s) => s.target)), worker));
      const targetAt = (t: number): number => {
        let from = start;
        let at = 0;
        for (const s of stages) {
          if (t < at + s.ms) return Math.round(from + ((s.target - from) * (t - at)) / s.ms);
          at += s.ms;
          from = s.target;
        }
        return from;
      };
      let interruptedRampDown = 0;
      for (;;) {
        const t = now() - t0;
        if (t >= total || stop.aborted) break;
        const want = localShare(targetAt(t), worker);
        let have = looping.size;
        // Starting thousands of VUs in one tick would make a burst; each tick adds what the ramp allows so far.
        for (let i = 0; have < want; i++) {
          if (!looping.has(i)) {
            startLoop(i);
            have++;
          }
        }
        if (have > want) {
          const ids = [...looping.keys()].sort((a, b) => b - a).slice(0, have - want);
          for (const i of ids) {
            const entry = looping.get(i)!;
            stopLoop(i);
            void Promise.race([entry.done, sleep(rampDownGrace)]).then(() => {
              if (!entry.finished) interruptedRampDown++;
            });
          }
        }
        vusGauge(looping.size);
        await sleep(Math.min(50, total - t), stop);
      }
      const interrupted = (await finishLoops()) + interruptedRampDown;
      vusGauge(0);
      builtin.interruptedIterations.add(interrupted);
      return { interrupted };
    }

    case "shared-iterations": {
      const n = localShare(options.vus, worker);
      builtin.vusMax.add(n);
      const total = options.iterations;
      let k = worker.index;
      const deadline = parseDuration(options.maxDuration ?? "10m");
      const ctrl = new AbortController();
      const timer = setTimeout(() => ctrl.abort(), deadline);
      const onStop = () => ctrl.abort();
      stop.addEventListener("abort", onStop, { once: true });
      vusGauge(n);
      const loops = Array.from({ length: n }, async (_, i) => {
        const vu = newVu(i, ctrl.signal);
        while (!ctrl.signal.aborted) {
          const mine = k;
          if (mine >= total) break;
          k += worker.count;
          vu.iterationInTest = mine;
          await iterate(fn, vu);
          vu.iteration++;
          await tick();
        }
      });
      const all = Promise.all(loops);
      await Promise.race([all, new Promise((r) => ctrl.signal.addEventListener("abort", r, { once: true }))]);
      let finished = false;
      void all.then(() => (finished = true));
      await Promise.race([all, sleep(gracefulStop)]);
      clearTimeout(timer);
      stop.removeEventListener("abort", onStop);
      vusGauge(0);
      const interrupted = finished ? 0 : 1;
      builtin.interruptedIterations.add(interrupted);
      return { interrupted };
    }

    case "constant-arrival-rate": {
      const unit = parseDuration(options.timeUnit ?? "1s");
      const interval = unit / options.rate;
      const duration = parseDuration(options.duration);
      const maxLocal = Math.max(1, Math.ceil((options.maxVUs ?? options.preAllocatedVUs) / worker.count));
      const ctrl = new AbortController();
      const onStop = () => ctrl.abort();
      stop.addEventListener("abort", onStop, { once: true });
      const free: VU[] = [];
      let allocated = 0;
      for (; allocated < Math.min(maxLocal, Math.ceil(options.preAllocatedVUs / worker.count)); allocated++) free.push(newVu(allocated, ctrl.signal));
      builtin.vusMax.add(allocated);
      const inflight = new Set<Promise<void>>();
      let maxInUse = 0;
      let k = worker.index;
      while (!stop.aborted) {
        const due = t0 + k * interval;
        if (due - t0 >= duration) break;
        const early = due - now();
        if (early > 1) {
          vusGauge(inflight.size);
          await sleep(early - 0.5, stop);
          continue;
        }
        k += worker.count;
        let vu = free.pop();
        if (!vu && allocated < maxLocal) {
          vu = newVu(allocated++, ctrl.signal);
          builtin.vusMax.add(allocated);
        }
        if (!vu) {
          builtin.droppedIterations.add(1);
          continue;
        }
        const v = vu;
        v.iterationInTest = k - worker.count;
        const p: Promise<void> = iterate(fn, v).then(() => {
          v.iteration++;
          inflight.delete(p);
          free.push(v);
        });
        inflight.add(p);
        if (inflight.size > maxInUse) maxInUse = inflight.size;
      }
      builtin.vusMax.add(allocated);
      ctrl.abort();
      const left = [...inflight];
      let settledCount = 0;
      for (const p of left) void p.then(() => settledCount++);
      await Promise.race([Promise.all(left), sleep(gracefulStop)]);
      stop.removeEventListener("abort", onStop);
      vusGauge(0);
      const interrupted = left.length - settledCount;
      builtin.interruptedIterations.add(interrupted);
      return { interrupted };
    }
  }
}

/** Planned length of the iteration phase (without graceful stop), for timeouts and progress. */
export function plannedMs(options: Options): number {
  switch (options.executor) {
    case "constant-vus":
    case "constant-arrival-rate":
      return parseDuration(options.duration);
    case "ramping-vus":
      return options.stages.reduce((a, s) => a + parseDuration(s.duration), 0);
    case "shared-iterations":
      return parseDuration(options.maxDuration ?? "10m");
  }
}

/** A one-line description, k6 style. */
export function describeExecutor(options: Options, workers: number): string {
  const procs = workers === 0 ? "in the runner process" : `${workers} worker process${workers === 1 ? "" : "es"}`;
  const grace = `gracefulStop: ${options.gracefulStop ?? "10s"}`;
  switch (options.executor) {
    case "constant-vus":
      return `constant-vus: ${options.vus} looping VUs for ${options.duration} (${grace}), ${procs}`;
    case "ramping-vus":
      return `ramping-vus: up to ${Math.max(options.startVUs ?? 0, ...options.stages.map((s) => s.target))} looping VUs over ${options.stages
        .map((s) => `${s.duration}→${s.target}`)
        .join(", ")} (${grace}), ${procs}`;
    case "constant-arrival-rate":
      return `constant-arrival-rate: ${options.rate} iterations/${options.timeUnit ?? "1s"} for ${options.duration} (maxVUs: ${options.maxVUs ?? options.preAllocatedVUs}, ${grace}), ${procs}`;
    case "shared-iterations":
      return `shared-iterations: ${options.iterations} iterations shared by ${options.vus} VUs (maxDuration: ${options.maxDuration ?? "10m"}, ${grace}), ${procs}`;
  }
}
