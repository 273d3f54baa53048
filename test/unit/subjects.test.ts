import { describe, expect, it } from "vitest";
import { createSubjects } from "../../bus/subjects.js";
import { decodePageToken, encodePageToken } from "../../chat/page-token.js";

describe("subjects", () => {
  it("builds channel and user subjects under the prefix and parses them back", () => {
    const s = createSubjects("acme.chat");
    expect(s.channel(42n)).toBe("acme.chat.ch.42");
    expect(s.user(7n)).toBe("acme.chat.user.7");
    expect(s.parseChannel("acme.chat.ch.42")).toBe(42n);
    expect(s.parseChannel("acme.chat.user.42")).toBeUndefined();
    expect(s.parseUser("acme.chat.user.7")).toBe(7n);
    expect(s.parseUser("other.user.7")).toBeUndefined();
    expect(s.parseChannel("acme.chat.ch.4x")).toBeUndefined();
    expect(s.fastLog(42n)).toBe("acme.chat.fastlog.ch.42");
    expect(s.fastLogAll).toBe("acme.chat.fastlog.ch.>");
    expect(s.parseChannel(s.fastLog(42n))).toBeUndefined();
    expect(s.fastLogStream).toBe("acme_chat_fastlog");
  });

  it("rejects prefixes that would break NATS subject syntax", () => {
    expect(() => createSubjects("a b")).toThrow();
    expect(() => createSubjects("a.*")).toThrow();
    expect(() => createSubjects("")).toThrow();
  });
});

describe("page tokens", () => {
  it("round-trip and are bound to their listing", () => {
    const token = encodePageToken("users", 123n);
    expect(decodePageToken("page_token", "users", token)).toBe(123n);
    expect(decodePageToken("page_token", "users", "")).toBe(0n);
    expect(() => decodePageToken("page_token", "members", token)).toThrow(/page_token: invalid page token/);
    expect(() => decodePageToken("page_token", "users", "%%%")).toThrow(/invalid page token/);
    expect(() => decodePageToken("page_token", "users", "bm9wZQ")).toThrow(/invalid page token/);
  });
});
