/** Small process helpers shared by the harnesses that start real servers. */
import type { ChildProcess } from "node:child_process";

/** SIGTERM, then SIGKILL if the process has not exited within graceMs. */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
  clearTimeout(timer);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

export { freePort } from "../../core/net.js";
