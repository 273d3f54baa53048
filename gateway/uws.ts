/**
 * Loads uWebSockets.js (the npm alias of @trufflesuite/uws-js-unofficial).
 * That package silently falls back to a slow pure-JS server when its native
 * binary does not load (or UWS_USE_FALLBACK is set, which config refuses);
 * the gateway refuses to run on the fallback.
 */
import { createRequire } from "node:module";

export type Uws = typeof import("uWebSockets.js");

export class UwsUnavailableError extends Error {
  override name = "UwsUnavailableError";
}

export function loadUws(): Uws {
  const require = createRequire(import.meta.url);
  const uws = require("uWebSockets.js") as Uws;
  if (!/\[native code\]/.test(Function.prototype.toString.call(uws.App))) {
    throw new UwsUnavailableError(
      `the native uWebSockets.js binding did not load for Node ${process.version} (${process.platform}-${process.arch}, ABI ${process.versions.modules}); ` +
        "refusing to start on the slow pure-JS fallback",
    );
  }
  return uws;
}
