/**
 * A real nats-server (with JetStream) for tests and benchmarks: installed from
 * Debian's package when missing, started on a free loopback port with its data
 * in a temporary folder, and stopped by whoever started it.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, stopChild } from "./processes.js";

export { freePort };

export interface RunningNats {
  url: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

const CANDIDATES = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];

function findBinary(): string | undefined {
  const fromPath = (process.env.PATH ?? "").split(path.delimiter).map((d) => path.join(d, "nats-server"));
  return [...fromPath, ...CANDIDATES].find((p) => existsSync(p));
}

/** The nats-server binary, installed with apt-get (Debian package nats-server) if needed. */
export function ensureNatsServer(log: (line: string) => void = () => {}): string {
  const found = findBinary();
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new Error("nats-server is not installed and this user cannot install it: run `sudo apt-get install -y nats-server`");
  }
  log("installing nats-server (Debian package)...");
  const apt = (args: string[]) =>
    execFileSync("apt-get", args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  try {
    apt(["install", "-y", "-qq", "nats-server"]);
  } catch {
    apt(["update", "-qq"]);
    apt(["install", "-y", "-qq", "nats-server"]);
  }
  const installed = findBinary();
  if (!installed) throw new Error("apt-get installed nats-server, but no nats-server binary was found");
  return installed;
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startNatsServer(options: { port?: number; log?: (line: string) => void } = {}): Promise<RunningNats> {
  const binary = ensureNatsServer(options.log);
  const port = options.port ?? (await freePort());
  const storeDir = mkdtempSync(path.join(tmpdir(), "chat-nats-"));
  const child = spawn(binary, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  try {
    await waitForPort(port, child, 15_000);
  } catch (err) {
    child.kill("SIGKILL");
    rmSync(storeDir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${stderr}`);
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    child,
    async stop() {
      await stopChild(child, 5000);
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
