/**
 * Translates the validated NATS settings into nats.js connection options:
 * servers, credentials, TLS, liveness pings and reconnect pacing.
 */
import { readFileSync } from "node:fs";
import { credsAuthenticator, type ConnectionOptions } from "nats";
import type { NatsConfig } from "../core/config.js";

export function natsConnectionOptions(settings: NatsConfig): Partial<ConnectionOptions> {
  return {
    servers: settings.servers,
    ...(settings.token !== undefined && { token: settings.token }),
    ...(settings.user !== undefined && { user: settings.user, pass: settings.password }),
    ...(settings.credsFile !== undefined && { authenticator: credsAuthenticator(readFileSync(settings.credsFile)) }),
    ...(settings.tlsCaFile !== undefined && { tls: { caFile: settings.tlsCaFile } }),
    pingInterval: settings.pingIntervalMs,
    maxPingOut: settings.maxPingsOut,
    reconnectTimeWait: settings.reconnectWaitMs,
  };
}
