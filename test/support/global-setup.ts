/**
 * Compiles the program once before the suites: the lifecycle tests run the
 * real binary (dist/bin/chat.js), exactly as `npm start` does.
 */
import { execFileSync } from "node:child_process";

export default function setup(): void {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
    stdio: "inherit",
  });
}
