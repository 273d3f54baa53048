/**
 * Runs the real program (the compiled dist/bin/chat.js) as a child process,
 * for tests and benchmarks that must exercise exactly what `npm start` runs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";

/** The compiled entry point, found from the repository root (the working directory). */
export const CHAT_BIN = path.resolve("dist/bin/chat.js");

/** Log lines kept per process (the newest). */
const MAX_LOGS = 20_000;

export interface ChatProcess {
  child: ChildProcess;
  /** The API's base URL. */
  url: string;
  /** The gateway's WebSocket URLs (ws://host:port/ws), one per listen address. */
  gatewayUrls: string[];
  /** Its log lines, parsed (the newest 10,000 to 20,000). */
  logs: Array<Record<string, unknown>>;
  /** Everything the process wrote to stderr so far (Node's inspector URL goes there). */
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

export async function startChatProcess(
  env: Record<string, string>,
  args: string[] = [],
  nodeArgs: string[] = [],
): Promise<ChatProcess> {
  const child = spawn(process.execPath, [...nodeArgs, CHAT_BIN, ...args], {
    env: { PATH: process.env.PATH, CHAT_API_HOST: "127.0.0.1", CHAT_API_PORT: "0", CHAT_GATEWAY_HOST: "127.0.0.1", CHAT_GATEWAY_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let gatewayUrls: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Nobody can stop a server whose start failed: stop it here.
      child.kill("SIGKILL");
      reject(new Error(`no "chat started" line in time; stderr: ${stderr}`));
    }, 20_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        // Bounded: a benchmark's server writes an access line per request.
        if (logs.length > MAX_LOGS) logs.splice(0, logs.length - MAX_LOGS / 2);
        if (entry.msg === "chat started" && typeof entry.api === "string") {
          clearTimeout(timer);
          gatewayUrls = Array.isArray(entry.gateway) ? (entry.gateway as string[]) : [];
          resolve(entry.api);
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before starting; stderr: ${stderr}`));
    });
  });
  return { child, url, gatewayUrls, logs, stderr: () => stderr, exited };
}

/** Runs the program to completion and returns its exit code and output (stdout holds the log). */
export function runChat(env: Record<string, string>, args: string[] = []): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHAT_BIN, ...args], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    child.once("exit", (code) => resolve({ code, stderr, stdout }));
  });
}
