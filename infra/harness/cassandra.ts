/**
 * A real single-node Cassandra 5.0 for tests and benchmarks: its jars come
 * from Maven Central (infra/cassandra/pom.xml, cached under ~/.cache between
 * runs), it runs CassandraDaemon on Java 17 with the project's own
 * cassandra.yaml (loopback only, free ports, data in a temporary folder, small
 * heap), and whoever starts it stops it.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import path from "node:path";
import { freePort, stopChild } from "./processes.js";

export const CASSANDRA_VERSION = "5.0.6";
const INFRA = path.resolve("infra/cassandra");

export interface RunningCassandra {
  /** host:port of the CQL native transport. */
  contactPoint: string;
  port: number;
  child: ChildProcess;
  /** Stops the node (SIGKILL, as a crash), keeping its data; `start()` brings it back on the same ports. */
  kill(): Promise<void>;
  /** Starts a killed node again on its data and ports, and waits until it takes CQL clients. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The folder holding Cassandra's jars, fetched with Maven when missing. */
export function ensureCassandraJars(log: (line: string) => void = () => {}): string {
  const cache = process.env.CHAT_CASSANDRA_CACHE ?? path.join(homedir(), ".cache", "chat-backend", `cassandra-${CASSANDRA_VERSION}`);
  const lib = path.join(cache, "lib");
  const jar = path.join(lib, `cassandra-all-${CASSANDRA_VERSION}.jar`);
  if (existsSync(jar)) return lib;
  mkdirSync(lib, { recursive: true });
  log(`fetching Cassandra ${CASSANDRA_VERSION} from Maven Central into ${lib}...`);
  execFileSync("mvn", ["-q", "-B", "-f", path.join(INFRA, "pom.xml"), "dependency:copy-dependencies", `-DoutputDirectory=${lib}`], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (!existsSync(jar)) throw new Error(`Maven ran, but ${jar} is missing`);
  return lib;
}

function jvmOptions(): string[] {
  return readFileSync(path.join(INFRA, "jvm17.options"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

export async function startCassandra(
  options: { heapMb?: number; readyTimeoutMs?: number; log?: (line: string) => void } = {},
): Promise<RunningCassandra> {
  const lib = ensureCassandraJars(options.log);
  const dir = mkdtempSync(path.join(tmpdir(), "chat-cassandra-"));
  const [storagePort, nativePort] = [await freePort(), await freePort()];
  const config = readFileSync(path.join(INFRA, "cassandra.yaml.template"), "utf8")
    .replaceAll("{{DIR}}", dir)
    .replaceAll("{{STORAGE_PORT}}", String(storagePort))
    .replaceAll("{{NATIVE_PORT}}", String(nativePort));
  writeFileSync(path.join(dir, "cassandra.yaml"), config);
  mkdirSync(path.join(dir, "logs"));
  mkdirSync(path.join(dir, "triggers"));
  const heap = options.heapMb ?? 256;
  const logFile = path.join(dir, "logs", "system.log");
  const launch = async (): Promise<ChildProcess> => {
    // Readiness is the log line after this launch's start, not an earlier one.
    const logStart = existsSync(logFile) ? readFileSync(logFile, "utf8").length : 0;
    const child = spawn(
      "java",
      [
        `-Xms${heap}m`,
        `-Xmx${heap}m`,
        ...jvmOptions(),
        `-Dcassandra.config=file://${path.join(dir, "cassandra.yaml")}`,
        `-Dcassandra.storagedir=${dir}`,
        `-Dcassandra.logdir=${path.join(dir, "logs")}`,
        `-Dcassandra.triggers_dir=${path.join(dir, "triggers")}`,
        `-Dlogback.configurationFile=file://${path.join(INFRA, "logback.xml")}`,
        "-cp",
        `${lib}/*`,
        "org.apache.cassandra.service.CassandraDaemon",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
    const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
    for (;;) {
      const logText = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(logStart) : "";
      if (logText.includes("Starting listening for CQL clients")) return child;
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill("SIGKILL");
        const tail = logText.split("\n").slice(-30).join("\n");
        throw new Error(`Cassandra did not become ready (exit ${child.exitCode}):\n${tail}\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  let child: ChildProcess;
  try {
    child = await launch();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    contactPoint: `127.0.0.1:${nativePort}`,
    port: nativePort,
    get child() {
      return child;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    },
    async start() {
      child = await launch();
    },
    async stop() {
      await stopChild(child, 15_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
