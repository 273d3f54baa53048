import { describe, expect, it } from "vitest";
import { createNatsBus } from "../../bus/nats-bus.js";
import { describeBusContract } from "./bus-contract.js";

/** Started by test/support/global-setup.ts (a real nats-server), or given by the caller. */
const url = process.env.CHAT_TEST_NATS_URL;

describe("NATS bus setup", () => {
  it("has a real nats-server to talk to", () => {
    expect(url, "CHAT_TEST_NATS_URL is set by the global setup").toMatch(/^nats:\/\//);
  });
});

describeBusContract("NATS", { create: () => createNatsBus({ servers: [url!], name: "chat-contract-test" }) });
