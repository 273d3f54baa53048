/**
 * Where a process's JS heap goes: a heap snapshot taken through the
 * inspector, summed by node type and constructor name (self sizes, not
 * retained sizes), largest first. Divided by a connection count it says
 * what each idle connection costs, object kind by object kind.
 */
import WebSocket from "ws";

export interface HeapGroup {
  /** "object: Connection", "closure: onUser", "string", ... */
  what: string;
  count: number;
  bytes: number;
}

export async function heapSummary(url: string, top = 25, timeoutMs = 120_000): Promise<{ totalBytes: number; nodes: number; groups: HeapGroup[] }> {
  const ws = new WebSocket(url, { maxPayload: 1024 * 1024 * 1024 });
  const timer = setTimeout(() => ws.terminate(), timeoutMs);
  const chunks: string[] = [];
  try {
    await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
    await new Promise<void>((resolve, reject) => {
      ws.on("message", (data: Buffer) => {
        const msg = JSON.parse(data.toString()) as { id?: number; method?: string; params?: { chunk?: string } };
        if (msg.method === "HeapProfiler.addHeapSnapshotChunk") chunks.push(msg.params!.chunk!);
        else if (msg.id === 1) resolve();
      });
      ws.once("close", () => reject(new Error("inspector closed during the heap snapshot")));
      ws.send(JSON.stringify({ id: 1, method: "HeapProfiler.takeHeapSnapshot", params: { reportProgress: false } }));
    });
  } finally {
    clearTimeout(timer);
    ws.close();
  }
  const snapshot = JSON.parse(chunks.join("")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  chunks.length = 0;
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const stride = fields.length;
  const iType = fields.indexOf("type");
  const iName = fields.indexOf("name");
  const iSize = fields.indexOf("self_size");
  const groups = new Map<string, HeapGroup>();
  let totalBytes = 0;
  const { nodes, strings } = snapshot;
  for (let i = 0; i < nodes.length; i += stride) {
    const type = types[nodes[i + iType]!] ?? "?";
    const size = nodes[i + iSize]!;
    totalBytes += size;
    // Strings and numbers are named by their value: group them by type only.
    const what = type === "object" || type === "closure" || type === "native" ? `${type}: ${strings[nodes[i + iName]!]}` : type;
    let g = groups.get(what);
    if (!g) groups.set(what, (g = { what, count: 0, bytes: 0 }));
    g.count++;
    g.bytes += size;
  }
  return {
    totalBytes,
    nodes: nodes.length / stride,
    groups: [...groups.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top),
  };
}
