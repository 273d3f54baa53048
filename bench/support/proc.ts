/**
 * What Linux says about processes and the host, from /proc: CPU time and
 * resident memory per process, a process's children, kernel limits that
 * bound connection counts, and TCP counters. Every reader returns undefined
 * (or leaves a field out) rather than throw when a file is missing.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const read = (file: string): string | undefined => {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
};

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Fields of /proc/<pid>/stat after the command name: [0] state, [1] ppid, [11] utime, [12] stime. */
function statFields(pid: number): string[] | undefined {
  const stat = read(`/proc/${pid}/stat`);
  return stat === undefined ? undefined : stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** User + system CPU seconds a process used so far. */
export function cpuSeconds(pid: number): number | undefined {
  const f = statFields(pid);
  return f === undefined ? undefined : (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Resident set size in bytes (VmRSS), undefined if the process is gone. */
export function rssBytes(pid: number): number | undefined {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(read(`/proc/${pid}/status`) ?? "");
  return m ? Number(m[1]) * 1024 : undefined;
}

export function alive(pid: number): boolean {
  const f = statFields(pid);
  return f !== undefined && f[0] !== "Z";
}

/** Live processes whose parent is `ppid`. */
export function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f !== undefined && Number(f[1]) === ppid && f[0] !== "Z") out.push(Number(entry));
  }
  return out;
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Soft and hard open-files limits of a process (this one by default). */
export function openFilesLimit(pid: number | "self" = "self"): { soft: number; hard: number } | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(read(`/proc/${pid}/limits`) ?? "");
  if (!m) return undefined;
  const n = (v: string) => (v === "unlimited" ? Infinity : Number(v));
  return { soft: n(m[1]!), hard: n(m[2]!) };
}

/** Open file descriptors of a process. */
export function openFiles(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

const sysctl = (name: string): string | undefined => read(`/proc/sys/${name.replaceAll(".", "/")}`)?.trim().replace(/\s+/g, " ");

/** The kernel settings that bound how many connections one host holds (see infra/HOST-TUNING.md). */
export function hostLimits(): Record<string, string | number | undefined> {
  const self = openFilesLimit();
  return {
    "ulimit -n (soft)": self?.soft,
    "ulimit -Hn (hard)": self?.hard,
    ...Object.fromEntries(
      [
        "net.ipv4.ip_local_port_range",
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_max_tw_buckets",
        "net.ipv4.tcp_tw_reuse",
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.netfilter.nf_conntrack_max",
        "fs.file-max",
        "fs.nr_open",
      ].map((n) => [n, sysctl(n)]),
    ),
  };
}

/** Ephemeral ports per (source address, destination) pair: ip_local_port_range's width. */
export function ephemeralPorts(): number | undefined {
  const [lo, hi] = (sysctl("net.ipv4.ip_local_port_range") ?? "").split(" ").map(Number);
  return lo !== undefined && hi !== undefined && Number.isFinite(lo) && Number.isFinite(hi) ? hi - lo + 1 : undefined;
}

/** Host-wide figures that move with connection counts: files, sockets, kernel memory, conntrack. */
export function hostSnapshot(): Record<string, number | undefined> {
  const fileNr = (read("/proc/sys/fs/file-nr") ?? "").trim().split(/\s+/).map(Number);
  const mem = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(read("/proc/meminfo") ?? "");
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const sockstat = read("/proc/net/sockstat") ?? "";
  const tcp = (key: string) => {
    const m = new RegExp(`^TCP:.*\\b${key} (\\d+)`, "m").exec(sockstat);
    return m ? Number(m[1]) : undefined;
  };
  const conntrack = sysctl("net.netfilter.nf_conntrack_count");
  return {
    openFiles: fileNr[0],
    tcpInUse: tcp("inuse"),
    tcpAlloc: tcp("alloc"),
    tcpTimeWait: tcp("tw"),
    /** Pages of TCP buffer memory in use (sockstat). */
    tcpMemPages: tcp("mem"),
    slabBytes: mem("Slab"),
    slabUnreclaimableBytes: mem("SUnreclaim"),
    memAvailableBytes: mem("MemAvailable"),
    conntrackCount: conntrack === undefined ? undefined : Number(conntrack),
  };
}

/** TCP counters of this network namespace (shared with anything else running here). */
export function tcpCounters(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const file of ["/proc/net/netstat", "/proc/net/snmp"]) {
    const lines = (read(file) ?? "").split("\n");
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i]!.split(/\s+/);
      const values = lines[i + 1]!.split(/\s+/);
      const prefix = names[0];
      if (prefix !== "TcpExt:" && prefix !== "Tcp:") continue;
      names.forEach((n, j) => {
        if (j > 0) out[`${prefix.slice(0, -1)}.${n}`] = Number(values[j]);
      });
    }
  }
  return out;
}

/** Counters that say whether accepting or connecting was the limit. */
export const ACCEPT_COUNTERS = [
  "TcpExt.ListenOverflows",
  "TcpExt.ListenDrops",
  "TcpExt.TCPReqQFullDrop",
  "TcpExt.TCPReqQFullDoCookies",
  "TcpExt.SyncookiesSent",
  "TcpExt.TCPTimeouts",
  "TcpExt.TCPAbortOnMemory",
  "Tcp.ActiveOpens",
  "Tcp.PassiveOpens",
  "Tcp.AttemptFails",
  "Tcp.EstabResets",
  "Tcp.RetransSegs",
] as const;

export function counterDelta(before: Record<string, number>, after: Record<string, number>, names: readonly string[]): Record<string, number> {
  return Object.fromEntries(names.filter((n) => after[n] !== undefined).map((n) => [n, after[n]! - (before[n] ?? 0)]));
}

/** The whole machine's CPU: busy and total jiffies since boot (all cores). */
export function machineCpu(): { busy: number; total: number } | undefined {
  const line = (read("/proc/stat") ?? "").split("\n")[0];
  if (!line?.startsWith("cpu ")) return undefined;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

export function loadAverage(): number[] | undefined {
  const v = (read("/proc/loadavg") ?? "").split(" ").slice(0, 3).map(Number);
  return v.length === 3 && v.every(Number.isFinite) ? v : undefined;
}

/** Measures the CPU each process (and this one, as `bench`) used during a phase, as % of one core. */
export function cpuMeter(pids: () => Record<string, number | undefined>): () => Record<string, number> {
  const start = performance.now();
  const before = Object.fromEntries(Object.entries(pids()).map(([k, pid]) => [k, pid === undefined ? undefined : cpuSeconds(pid)]));
  const benchBefore = process.cpuUsage();
  return () => {
    const wall = (performance.now() - start) / 1000;
    const out: Record<string, number> = {};
    for (const [k, pid] of Object.entries(pids())) {
      const b = before[k];
      const a = pid === undefined ? undefined : cpuSeconds(pid);
      if (a !== undefined && b !== undefined) out[k] = Math.round(((a - b) / wall) * 100);
    }
    const bench = process.cpuUsage(benchBefore);
    out.bench = Math.round(((bench.user + bench.system) / 1e6 / wall) * 100);
    return out;
  };
}
