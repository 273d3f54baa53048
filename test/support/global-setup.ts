/**
 * Before the suites: compiles the program (the lifecycle tests run the real
 * binary, dist/bin/chat.js, exactly as `npm start` does) and starts a real
 * nats-server unless CHAT_TEST_NATS_URL points at one; stops what it started.
 */
import { execFileSync } from "node:child_process";
import { startNatsServer, type RunningNats } from "../../infra/harness/nats-server.js";

let nats: RunningNats | undefined;

export default async function setup(): Promise<() => Promise<void>> {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  if (!process.env.CHAT_TEST_NATS_URL) {
    nats = await startNatsServer({ log: (line) => process.stderr.write(`${line}\n`) });
    process.env.CHAT_TEST_NATS_URL = nats.url;
  }
  return async () => {
    await nats?.stop();
  };
}
