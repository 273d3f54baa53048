/**
 * Socket tickets (SocketService.CreateSocketTicket): a short-lived,
 * single-use ticket in the URL instead of the token; the socket lives as
 * long as the token it was traded for, and tickets and tokens never stand
 * in for each other.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSocketTickets, TICKET_TTL_SECONDS } from "../../chat/socket-tickets.js";
import { SocketService } from "../../gen/chat/v1/socket_pb.js";
import { startTestApi, type TestApi, type TestUser } from "../support/api.js";
import { Code, expectCode } from "../support/expect-code.js";
import { TestSocket, UpgradeRejected } from "../support/ws-client.js";

let t: TestApi;
let ada: TestUser;
const ticketsOf = (token: string) =>
  createClient(SocketService, createConnectTransport({ baseUrl: t.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))] }));
const connectWithTicket = (ticket: string) => TestSocket.connect(`${t.wsUrl}?ticket=${encodeURIComponent(ticket)}`);

beforeAll(async () => {
  t = await startTestApi();
  ada = await t.newUser();
});
afterAll(() => t.stop());

describe("socket tickets", () => {
  it("open a socket once, for the user who asked, with no token in the URL", async () => {
    const { ticket, expiresAt } = await ticketsOf(ada.token).createSocketTicket({});
    expect(Number(expiresAt!.seconds) * 1000).toBeLessThanOrEqual(Date.now() + TICKET_TTL_SECONDS * 1000 + 1000);
    const socket = await connectWithTicket(ticket);
    expect((await socket.hello()).userId).toBe(ada.id);
    const again = await connectWithTicket(ticket).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(UpgradeRejected);
    expect((again as UpgradeRejected).status).toBe(401);
    await socket.close();
  });

  it("are not tokens, and tokens are not tickets; forged ones are refused", async () => {
    const { ticket } = await ticketsOf(ada.token).createSocketTicket({});
    await expectCode(t.clients(ticket).channels.listMyChannels({}), Code.Unauthenticated);
    for (const bad of [ada.token, "garbage", `${ticket}x`]) {
      const refused = await connectWithTicket(bad).catch((e: unknown) => e);
      expect((refused as UpgradeRejected).status, bad.slice(0, 20)).toBe(401);
    }
    await expectCode(t.clients("test-admin-token-0123456789").channels.listMyChannels({}), Code.PermissionDenied);
  });

  it("give a socket that ends with 4001 when the token it was traded for expires", async () => {
    // Tokens live at least 60 s, so the ticket of one that expires in 2 s is minted here,
    // with the server's secret, exactly as CreateSocketTicket mints it.
    const tickets = createSocketTickets({ jwtSecret: t.api.secrets.jwtSecret });
    const { ticket } = tickets.issue({ kind: "user", userId: ada.id, expiresAt: Date.now() + 2000 });
    const socket = await connectWithTicket(ticket);
    await socket.hello();
    expect((await socket.closed).code).toBe(4001);
  });

  it("expire after their 30 s", () => {
    let now = Date.now();
    const tickets = createSocketTickets({ jwtSecret: "x".repeat(32), now: () => now });
    const { ticket } = tickets.issue({ kind: "user", userId: 7n, expiresAt: now + 3_600_000 });
    now += TICKET_TTL_SECONDS * 1000 + 1;
    expect(() => tickets.redeem(ticket)).toThrow(/ticket expired/);
  });
});
