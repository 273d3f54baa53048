/** Parsing mentions out of a text, and what counts as one emoji. */
import { ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { requireEmoji } from "../../chat/messages/emoji.js";
import { MAX_MENTIONED_USERS, mentionsIn, parseMentions } from "../../chat/messages/mentions.js";

describe("mentions", () => {
  it("finds <@id>, <!channel> and <!here>, in order of first mention, without repeats", () => {
    expect(parseMentions("hi <@12> and <@7>, <@12> again <!here>")).toEqual({ userIds: [12n, 7n], channel: false, here: true });
    expect(parseMentions("<!channel>")).toEqual({ userIds: [], channel: true, here: false });
  });

  it("ignores what only looks like a mention", () => {
    expect(parseMentions("<@> <@abc> <@0> <@99999999999999999999> @12 <12> <!everyone> `<@ 5>`")).toEqual({ userIds: [], channel: false, here: false });
  });

  it("stops at the most users one message may mention", () => {
    const text = Array.from({ length: MAX_MENTIONED_USERS + 10 }, (_, i) => `<@${i + 1}>`).join(" ");
    expect(parseMentions(text).userIds).toHaveLength(MAX_MENTIONED_USERS);
  });

  it("keeps only members", async () => {
    const members = new Set([2n, 4n]);
    expect(await mentionsIn("<@1> <@2> <@3> <@4>", async (id) => members.has(id))).toEqual({ userIds: [2n, 4n], channel: false, here: false });
  });
});

describe("emoji", () => {
  it("accepts one emoji sequence of any kind, and shortcodes", () => {
    for (const e of ["👍", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵", "1️⃣", "🏳️‍🌈", ":+1:", ":party-parrot_2:", `:${"a".repeat(64)}:`]) {
      expect(requireEmoji("emoji", e)).toBe(e);
    }
  });

  it("adds the presentation selector an emoji needs, so both spellings are one reaction", () => {
    expect(requireEmoji("emoji", "❤")).toBe("❤️");
    expect(requireEmoji("emoji", "❤️")).toBe("❤️");
  });

  it("refuses text, two emoji, bad shortcodes, naming the field", () => {
    for (const e of ["", "a", "ok", "👍👍", "👍 ", ":Tada:", ":a b:", "::", `:${"a".repeat(65)}:`, "x".repeat(100), "\u200d"]) {
      expect(() => requireEmoji("emoji", e)).toThrow(ConnectError);
      expect(() => requireEmoji("emoji", e)).toThrow(/^\[invalid_argument\] emoji:/);
    }
  });
});
