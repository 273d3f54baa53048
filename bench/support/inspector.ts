/**
 * Reads a child Node process's memory after a full garbage collection,
 * through its inspector (started with --inspect=127.0.0.1:0). RSS alone
 * swings by tens of MiB with GC timing; retained heap after GC does not.
 */
import WebSocket from "ws";

export interface MemoryAfterGc {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export async function inspectorUrl(stderr: () => string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = /Debugger listening on (ws:\/\/\S+)/.exec(stderr());
    if (match) return match[1]!;
    if (Date.now() > deadline) throw new Error("no inspector URL on the child's stderr");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A Chrome DevTools Protocol call over an open inspector socket; rejects if the socket closes first. */
export type InspectorCall = (method: string, params?: object) => Promise<{ result?: { result?: { value?: string } } }>;

/** Shared by this module and inspector-all.ts (why: one CDP request/reply, matched by id). */
export function inspectorCaller(ws: WebSocket, url: string): InspectorCall {
  let id = 0;
  return (method, params = {}) =>
    new Promise((resolve, reject) => {
      const my = ++id;
      const on = (data: Buffer) => {
        const msg = JSON.parse(data.toString()) as { id?: number };
        if (msg.id === my) {
          ws.off("message", on);
          resolve(msg as { result?: { result?: { value?: string } } });
        }
      };
      ws.on("message", on);
      ws.once("close", () => reject(new Error(`inspector ${url} closed`)));
      ws.send(JSON.stringify({ id: my, method, params }));
    });
}

export async function memoryAfterGc(url: string): Promise<MemoryAfterGc> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
  const call = inspectorCaller(ws, url);
  await call("HeapProfiler.enable");
  await call("HeapProfiler.collectGarbage");
  await call("HeapProfiler.collectGarbage");
  const answer = await call("Runtime.evaluate", { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true });
  ws.close();
  return JSON.parse(answer.result?.result?.value ?? "{}") as MemoryAfterGc;
}
