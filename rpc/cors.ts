/**
 * CORS for browser clients on other origins (Connect and gRPC-Web from a web
 * app). Off unless CHAT_CORS_ORIGINS lists origins; "*" allows any origin.
 * Credentials are bearer tokens in a header, never cookies, so no
 * Allow-Credentials.
 */
import { cors as connectCors } from "@connectrpc/connect";
import type { NodeRequest, NodeResponse } from "./connect-node-adapter.js";
import { REQUEST_ID_HEADER } from "./interceptors.js";

const allowMethods = connectCors.allowedMethods.join(", ");
const allowHeaders = [...connectCors.allowedHeaders, "Authorization", REQUEST_ID_HEADER].join(", ");
const exposeHeaders = [...connectCors.exposedHeaders, "Cache-Control", REQUEST_ID_HEADER].join(", ");

/**
 * Adds CORS headers for allowed origins. Returns true when it answered the
 * request itself (a preflight), false when the request goes on.
 */
export function createCors(origins: readonly string[]): (req: NodeRequest, res: NodeResponse) => boolean {
  const any = origins.includes("*");
  const allowed = new Set(origins);
  return (req, res) => {
    const origin = req.headers.origin;
    if (typeof origin !== "string" || !(any || allowed.has(origin))) return false;
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "Origin");
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
      res.setHeader("access-control-allow-methods", allowMethods);
      res.setHeader("access-control-allow-headers", allowHeaders);
      res.setHeader("access-control-max-age", "7200");
      res.writeHead(204);
      res.end();
      return true;
    }
    res.setHeader("access-control-expose-headers", exposeHeaders);
    return false;
  };
}
