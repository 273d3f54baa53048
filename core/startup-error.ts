/**
 * A reason the process cannot start that an operator can fix (a port in
 * use, a data folder it cannot write, a server it cannot reach). Its message
 * says what and where, so the entry point logs it as one line and exits,
 * without a stack trace.
 */
export class StartupError extends Error {
  override name = "StartupError";
}

/** An error from listen() (net, http) or a failed bind, as one sentence naming what could not listen where. */
export function listenError(what: string, host: string, port: number, err: unknown): StartupError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const why =
    code === "EADDRINUSE"
      ? "the address is already in use"
      : code === "EACCES"
        ? "permission denied (ports below 1024 need privileges)"
        : code === "EADDRNOTAVAIL"
          ? "no interface has this address"
          : code === "ENOTFOUND"
            ? "the host name does not resolve"
            : ((err as Error | undefined)?.message ?? "unknown failure");
  return new StartupError(`${what} could not listen on ${host}:${port}: ${why}`, { cause: err });
}
