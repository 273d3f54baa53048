import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { CONFIG_VARIABLES, ConfigError, loadConfig } from "../../core/config.js";

describe("config", () => {
  it("has working defaults for the single-node mode", () => {
    const c = loadConfig({ env: {}, argv: [] });
    expect(c.role).toBe("all");
    expect(c.api.port).toBe(8080);
    expect(c.store.kind).toBe("sqlite");
    expect(c.bus.kind).toBe("local");
    expect(c.bus.subjectPrefix).toBe("chat");
  });

  it("names every bad variable in one error", () => {
    try {
      loadConfig({ env: { CHAT_API_PORT: "http", CHAT_NODE_ID: "4096", CHAT_LOG_LEVEL: "loud" }, argv: [] });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const message = (err as Error).message;
      expect(message).toMatch(/CHAT_API_PORT: expected an integer from 0 to 65535 \(got "http"\)/);
      expect(message).toMatch(/CHAT_NODE_ID: must be at most 1023/);
      expect(message).toMatch(/CHAT_LOG_LEVEL: expected one of/);
    }
  });

  it("takes the role from --role over CHAT_ROLE and rejects unknown flags", () => {
    expect(loadConfig({ env: { CHAT_ROLE: "all" }, argv: ["--role", "api"] }).role).toBe("api");
    expect(() => loadConfig({ env: {}, argv: ["--role", "db"] })).toThrow(/--role: expected one of all, api, gateway/);
    expect(() => loadConfig({ env: {}, argv: ["--bogus"] })).toThrow(/command line/);
  });

  it("rejects short secrets and inconsistent token lifetimes", () => {
    expect(() => loadConfig({ env: { CHAT_ADMIN_TOKEN: "short" }, argv: [] })).toThrow(/CHAT_ADMIN_TOKEN: must be at least 16/);
    expect(() => loadConfig({ env: { CHAT_JWT_SECRET: "x".repeat(10) }, argv: [] })).toThrow(/CHAT_JWT_SECRET/);
    expect(() =>
      loadConfig({ env: { CHAT_TOKEN_DEFAULT_TTL_SECONDS: "7200", CHAT_TOKEN_MAX_TTL_SECONDS: "3600" }, argv: [] }),
    ).toThrow(/must not exceed/);
  });

  it("parses CORS origins and rejects malformed ones", () => {
    expect(loadConfig({ env: { CHAT_CORS_ORIGINS: "https://a.example, http://localhost:3000" }, argv: [] }).api.corsOrigins).toEqual([
      "https://a.example",
      "http://localhost:3000",
    ]);
    expect(loadConfig({ env: { CHAT_CORS_ORIGINS: "*" }, argv: [] }).api.corsOrigins).toEqual(["*"]);
    expect(() => loadConfig({ env: { CHAT_CORS_ORIGINS: "a.example/path" }, argv: [] })).toThrow(/CHAT_CORS_ORIGINS/);
  });

  it("selects the NATS bus with its servers, and asks a standalone gateway for what it needs", () => {
    const c = loadConfig({ env: { CHAT_BUS: "nats", CHAT_NATS_URL: "nats://10.0.0.1:4222, nats://10.0.0.2:4222" }, argv: [] });
    expect(c.bus).toMatchObject({ kind: "nats", nats: { servers: ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"] } });
    expect(() => loadConfig({ env: { CHAT_BUS: "kafka" }, argv: [] })).toThrow(/CHAT_BUS: expected local or nats/);
    expect(() => loadConfig({ env: { CHAT_NATS_URL: "10.0.0.1:4222" }, argv: [] })).toThrow(/CHAT_NATS_URL/);
    expect(() => loadConfig({ env: { CHAT_BUS: "nats" }, argv: ["--role", "gateway"] })).toThrow(/CHAT_API_URL: required/);
  });

  it("reads driver and connection options, and rejects half-given or conflicting credentials", () => {
    const c = loadConfig({
      env: {
        CHAT_CASSANDRA_USERNAME: "chat",
        CHAT_CASSANDRA_PASSWORD: "secret",
        CHAT_CASSANDRA_REQUEST_TIMEOUT_MS: "3000",
        CHAT_CASSANDRA_SERIAL_CONSISTENCY: "serial",
        CHAT_NATS_TOKEN: "t0ken",
        CHAT_NATS_PING_INTERVAL_MS: "5000",
        CHAT_FAST_LOG_REPLICAS: "3",
        CHAT_FAST_LOG_WRITER: "false",
      },
      argv: [],
    });
    expect(c.store.cassandra).toMatchObject({ username: "chat", password: "secret", requestTimeoutMs: 3000, serialConsistency: "serial" });
    expect(c.bus.nats).toMatchObject({ token: "t0ken", pingIntervalMs: 5000, fastLog: { replicas: 3, writer: false } });
    expect(c.nodeId).toBeUndefined();
    expect(() => loadConfig({ env: { CHAT_CASSANDRA_USERNAME: "chat" }, argv: [] })).toThrow(/CHAT_CASSANDRA_PASSWORD: required together/);
    expect(() => loadConfig({ env: { CHAT_NATS_TOKEN: "t", CHAT_NATS_USER: "u", CHAT_NATS_PASSWORD: "p" }, argv: [] })).toThrow(
      /only one of CHAT_NATS_TOKEN, CHAT_NATS_USER/,
    );
    expect(() => loadConfig({ env: { CHAT_FAST_LOG_REPLICAS: "7" }, argv: [] })).toThrow(/CHAT_FAST_LOG_REPLICAS: must be at most 5/);
  });

  it("reports every problem in one error: bad values, rules across settings and refused variables alike", () => {
    let error: unknown;
    try {
      loadConfig({
        env: {
          CHAT_API_PORT: "http",
          CHAT_NATS_USER: "u",
          CHAT_TOKEN_DEFAULT_TTL_SECONDS: "7200",
          CHAT_TOKEN_MAX_TTL_SECONDS: "3600",
          CHAT_CASSANDRA_PASSWORD: "p",
          UWS_USE_FALLBACK: "1",
        },
        argv: ["--role", "gateway"],
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.sort()).toEqual(
      [
        'CHAT_API_PORT: expected an integer from 0 to 65535 (got "http")',
        "CHAT_BUS: a gateway in its own process (role gateway) needs nats; gateway workers of role all are CHAT_GATEWAY_WORKERS",
        "CHAT_CASSANDRA_USERNAME: required together with CHAT_CASSANDRA_PASSWORD",
        "CHAT_NATS_PASSWORD: required together with CHAT_NATS_USER",
        "CHAT_TOKEN_DEFAULT_TTL_SECONDS: must not exceed CHAT_TOKEN_MAX_TTL_SECONDS (3600)",
        "UWS_USE_FALLBACK: makes uWebSockets.js run its slow pure-JS fallback; the gateway needs the native binding: unset it",
      ].sort(),
    );
  });

  it("skips a rule across settings when one of its settings is itself bad (reported once)", () => {
    try {
      loadConfig({ env: { CHAT_TOKEN_DEFAULT_TTL_SECONDS: "soon", CHAT_TOKEN_MAX_TTL_SECONDS: "3600" }, argv: [] });
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems).toEqual(['CHAT_TOKEN_DEFAULT_TTL_SECONDS: expected an integer from 60 to 31622400 (got "soon")']);
    }
  });

  it("derives the gateway's addresses from host and port unless CHAT_GATEWAY_LISTEN lists them", () => {
    expect(loadConfig({ env: { CHAT_GATEWAY_HOST: "0.0.0.0", CHAT_GATEWAY_PORT: "9001" }, argv: [] }).gateway.listen).toEqual([
      { host: "0.0.0.0", port: 9001 },
    ]);
    expect(loadConfig({ env: { CHAT_DATA_DIR: "rel" }, argv: [] }).dataDir).toBe(path.resolve("rel"));
  });

  it("documents every variable it reads in the README's configuration table, and no other", () => {
    const readme = readFileSync("README.md", "utf8");
    const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("\n## ", readme.indexOf("## Configuration") + 1));
    const documented = new Set(
      section
        .split("\n")
        .filter((line) => line.startsWith("| `"))
        .flatMap((line) => [...line.split("|")[1]!.matchAll(/`(CHAT_[A-Z0-9_]+)`/g)].map((m) => m[1]!)),
    );
    expect([...documented].sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  it("never repeats a secret's value in an error", () => {
    const env = {
      CHAT_ADMIN_TOKEN: "short-admin",
      CHAT_JWT_SECRET: "short-jwt",
      CHAT_NATS_TOKEN: "",
      CHAT_NATS_USER: "u",
      CHAT_NATS_PASSWORD: "",
      CHAT_CASSANDRA_USERNAME: "c",
    };
    try {
      loadConfig({ env, argv: [] });
      expect.unreachable();
    } catch (err) {
      const message = (err as Error).message;
      expect(message).toMatch(/CHAT_ADMIN_TOKEN: must be at least 16 characters$/m);
      expect(message).toMatch(/CHAT_JWT_SECRET: must be at least 32 characters$/m);
      expect(message).not.toMatch(/short-admin|short-jwt/);
    }
  });

  it("warns of an unknown CHAT_ variable with the nearest known name, and ignores the suite's own", () => {
    const warnings: string[] = [];
    loadConfig({ env: { CHAT_API_PROT: "9000", CHAT_TEST_NATS_URL: "nats://x:1", PATH: "/bin" }, argv: [], onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual(["CHAT_API_PROT is not a setting of this program (did you mean CHAT_API_PORT?); it is ignored"]);
  });

  it("treats empty variables as unset", () => {
    expect(loadConfig({ env: { CHAT_API_PORT: "" }, argv: [] }).api.port).toBe(8080);
  });
});
