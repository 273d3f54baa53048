/** Listening on every configured address (one per IP alias or NIC), all or none. */
import type { TemplatedApp, us_listen_socket, us_socket } from "uWebSockets.js";
import type { Address } from "../core/config.js";
import { StartupError } from "../core/startup-error.js";
import type { Uws } from "./uws.js";

export interface Listening {
  /** The addresses actually listened on (ports resolved when 0 was asked). */
  readonly addresses: Address[];
  /** Stops accepting; open sockets stay. */
  close(): void;
}

export async function listenAll(uws: Uws, app: TemplatedApp, listen: readonly Address[]): Promise<Listening> {
  const sockets: us_listen_socket[] = [];
  const addresses: Address[] = [];
  const close = () => {
    for (const s of sockets) uws.us_listen_socket_close(s);
    sockets.length = 0;
  };
  for (const { host, port } of listen) {
    const socket = await new Promise<us_listen_socket | false>((resolve) => app.listen(host, port, resolve));
    if (!socket) {
      close();
      // uSockets says only that it failed: the usual causes, for the operator.
      throw new StartupError(`the gateway could not listen on ${host}:${port}: the address is in use, or not one of this host's`);
    }
    sockets.push(socket);
    addresses.push({ host, port: uws.us_socket_local_port(socket as unknown as us_socket) });
  }
  return { addresses, close };
}
