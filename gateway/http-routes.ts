/** The gateway port's plain HTTP: /healthz, /metrics (Prometheus), and 404 for anything else. */
import type { TemplatedApp } from "uWebSockets.js";
import type { Registry } from "prom-client";

export function registerHttpRoutes(app: TemplatedApp, registry: Registry): void {
  app.get("/healthz", (res) => {
    res.writeHeader("content-type", "text/plain").end("ok\n");
  });
  app.get("/metrics", (res) => {
    let aborted = false;
    res.onAborted(() => (aborted = true));
    registry.metrics().then(
      (text) => {
        if (!aborted) res.cork(() => res.writeHeader("content-type", registry.contentType).end(text));
      },
      () => {
        if (!aborted) res.cork(() => res.writeStatus("500 Internal Server Error").end());
      },
    );
  });
  app.any("/*", (res) => {
    res.writeStatus("404 Not Found").end("not found\n");
  });
}
