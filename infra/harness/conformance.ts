/**
 * The Connect conformance suite's runner (connectconformance, Go module
 * connectrpc.com/conformance, pinned below) for the RPC layer's conformance
 * test: built with `go install` into a versioned folder under ~/.cache when
 * missing, with the module's .proto files found in Go's module cache and
 * compiled with the project's own buf into a FileDescriptorSet that the
 * server under test (test/conformance/server-under-test.ts) loads at run
 * time. Nothing generated from those protos is committed.
 *
 * Needs Go (the module's go.mod asks for 1.26; an older go fetches that
 * toolchain itself unless GOTOOLCHAIN=local) and the Go module proxy that
 * `go env GOPROXY` names.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";

export const CONFORMANCE_MODULE = "connectrpc.com/conformance";
export const CONFORMANCE_VERSION = "v1.0.7";

export interface ConformanceSuite {
  /** The connectconformance binary. */
  runner: string;
  /** The module's proto root (connectrpc/conformance/v1/*.proto), in Go's module cache. */
  protoDir: string;
  /** Those protos and their imports as one binary google.protobuf.FileDescriptorSet. */
  descriptorSet: string;
}

const GO_CANDIDATES = ["/usr/local/go/bin/go", "/usr/lib/go/bin/go", "/usr/bin/go", path.join(homedir(), "go", "bin", "go")];

function findGo(): string {
  const fromPath = (process.env.PATH ?? "").split(path.delimiter).map((d) => path.join(d, "go"));
  const go = [...fromPath, ...GO_CANDIDATES].find((p) => existsSync(p));
  if (!go) throw new Error(`the conformance runner is built with Go, and no go binary was found (PATH, ${GO_CANDIDATES.join(", ")})`);
  return go;
}

/** The cache folder for this version: the binary and the descriptor set. */
export function conformanceCacheDir(): string {
  return process.env.CHAT_CONFORMANCE_CACHE ?? path.join(homedir(), ".cache", "chat-backend", `connectconformance-${CONFORMANCE_VERSION}`);
}

/**
 * The runner, the module's protos and their descriptor set: installs and
 * builds whatever is missing (the first time: about a minute of `go install`).
 */
export function ensureConformanceSuite(log: (line: string) => void = () => {}): ConformanceSuite {
  const cache = conformanceCacheDir();
  mkdirSync(cache, { recursive: true });
  let go: string | undefined;
  const runGo = (args: string[], env: Record<string, string> = {}) => {
    go ??= findGo();
    // cwd: the cache, so that no go.mod or go.work around the caller's folder is involved.
    return execFileSync(go, args, { cwd: cache, encoding: "utf8", env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  };
  const spec = `${CONFORMANCE_MODULE}@${CONFORMANCE_VERSION}`;

  const runner = path.join(cache, "connectconformance");
  if (!existsSync(runner)) {
    log(`installing connectconformance ${CONFORMANCE_VERSION} with go install into ${cache}...`);
    // Into a fresh folder first, so that an interrupted build never leaves a half-written binary behind.
    const gobin = mkdtempSync(path.join(cache, ".gobin-"));
    try {
      runGo(["install", `${CONFORMANCE_MODULE}/cmd/connectconformance@${CONFORMANCE_VERSION}`], { GOBIN: gobin });
      renameSync(path.join(gobin, "connectconformance"), runner);
    } catch (err) {
      throw new Error(`go install ${spec} failed: ${describe(err)}`);
    } finally {
      rmSync(gobin, { recursive: true, force: true });
    }
  }
  const version = execFileSync(runner, ["--version"], { encoding: "utf8" }).trim();
  if (!version.endsWith(` ${CONFORMANCE_VERSION}`)) {
    throw new Error(`${runner} reports "${version}", expected ${CONFORMANCE_VERSION}: delete it to reinstall`);
  }

  const modCache = runGo(["env", "GOMODCACHE"]).trim();
  // (A module path with capitals would be escaped in the cache's folder names; this one has none.)
  const protoDir = path.join(modCache, spec, "proto");
  if (!existsSync(path.join(protoDir, "connectrpc", "conformance", "v1", "service.proto"))) {
    // The binary was cached but the module cache was cleaned since.
    log(`downloading ${spec} into Go's module cache...`);
    try {
      runGo(["mod", "download", spec]);
    } catch (err) {
      throw new Error(`go mod download ${spec} failed: ${describe(err)}`);
    }
    if (!existsSync(protoDir)) throw new Error(`go mod download ${spec} ran, but ${protoDir} is missing`);
  }

  const descriptorSet = path.join(cache, "conformance.binpb");
  if (!existsSync(descriptorSet)) {
    log(`building the conformance protos' descriptor set into ${descriptorSet}...`);
    const tmp = `${descriptorSet}.${process.pid}.tmp`;
    try {
      execFileSync(path.resolve("node_modules/.bin/buf"), ["build", protoDir, "--as-file-descriptor-set", "-o", tmp], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      renameSync(tmp, descriptorSet);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new Error(`buf build ${protoDir} failed: ${describe(err)}`);
    }
  }
  return { runner, protoDir, descriptorSet };
}

function describe(err: unknown): string {
  const e = err as { message?: string; stderr?: string | Buffer };
  const stderr = e.stderr?.toString().trim();
  return stderr ? `${e.message ?? String(err)}\n${stderr}` : (e.message ?? String(err));
}
