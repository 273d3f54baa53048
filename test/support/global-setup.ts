/**
 * Before the suites: compiles the program (the lifecycle tests run the real
 * binary, dist/bin/chat.js, exactly as `npm start` does), starts a real
 * nats-server unless CHAT_TEST_NATS_URL points at one and a real Cassandra
 * unless CHAT_TEST_CASSANDRA (host:port) points at one; stops what it started.
 */
import { execFileSync } from "node:child_process";
import { startCassandra, type RunningCassandra } from "../../infra/harness/cassandra.js";
import { startNatsServer, type RunningNats } from "../../infra/harness/nats-server.js";

let nats: RunningNats | undefined;
let cassandra: RunningCassandra | undefined;

export default async function setup(): Promise<() => Promise<void>> {
  // CHAT_TEST_SKIP_BUILD=1: for a developer running store or unit tests while other code is mid-change (tests that run dist/ then use the last build).
  if (!process.env.CHAT_TEST_SKIP_BUILD) {
    execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  if (!process.env.CHAT_TEST_NATS_URL) {
    nats = await startNatsServer({ log });
    process.env.CHAT_TEST_NATS_URL = nats.url;
  }
  if (!process.env.CHAT_TEST_CASSANDRA) {
    cassandra = await startCassandra({ log });
    process.env.CHAT_TEST_CASSANDRA = cassandra.contactPoint;
  }
  return async () => {
    await Promise.all([nats?.stop(), cassandra?.stop()]);
  };
}
