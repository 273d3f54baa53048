/**
 * Memory after a full GC for every process of a program started with
 * --inspect=127.0.0.1:0: the main process and the processes it forks (fork()
 * passes the parent's execArgv on, so each child opens an inspector of its
 * own on a free port and prints its URL on the shared stderr).
 */
import WebSocket from "ws";
import { inspectorCaller } from "./inspector.js";

export interface ProcessMemory {
  pid: number;
  /** The inspector URL it was read through. */
  url: string;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/** Every inspector URL printed so far on a stderr, in order. */
export function inspectorUrls(stderr: string): string[] {
  return [...stderr.matchAll(/Debugger listening on (ws:\/\/\S+)/g)].map((m) => m[1]!);
}

/** Connects to one inspector, runs two full GCs and reads process.pid and process.memoryUsage(). */
export async function memoryAfterGcOf(url: string, timeoutMs = 60_000): Promise<ProcessMemory> {
  const ws = new WebSocket(url);
  const timer = setTimeout(() => ws.terminate(), timeoutMs);
  try {
    await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
    const call = inspectorCaller(ws, url);
    await call("HeapProfiler.enable");
    await call("HeapProfiler.collectGarbage");
    await call("HeapProfiler.collectGarbage");
    await call("HeapProfiler.disable");
    const answer = await call("Runtime.evaluate", {
      expression: "JSON.stringify({ pid: process.pid, ...process.memoryUsage() })",
      returnByValue: true,
    });
    return { ...(JSON.parse(answer.result?.result?.value ?? "{}") as Omit<ProcessMemory, "url">), url };
  } finally {
    clearTimeout(timer);
    ws.close();
  }
}

/** memoryAfterGcOf for every URL, one after the other (GC pauses stay apart); unreachable ones (exited processes) are left out. */
export async function memoryAfterGcOfAll(urls: string[]): Promise<Map<number, ProcessMemory>> {
  const out = new Map<number, ProcessMemory>();
  for (const url of urls) {
    try {
      const m = await memoryAfterGcOf(url);
      if (typeof m.pid === "number") out.set(m.pid, m);
    } catch {
      // a process that exited (a restarted worker's predecessor)
    }
  }
  return out;
}
