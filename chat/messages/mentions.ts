/**
 * Mentions in a message's text, as clients write them: <@USER_ID> for a
 * member, <!channel> for every member, <!here> for every member online.
 * Only members of the channel count as mentioned; others are left out, so a
 * mention cannot be used to ping (or probe) someone outside it.
 */
import type { Mentions } from "../../store/store.js";
import { MAX_ID } from "../../core/ids.js";

/** Most distinct users one message mentions; more are not notified (as in Slack, a mass mention is <!channel>). */
export const MAX_MENTIONED_USERS = 50;

const TOKEN = /<@(\d{1,19})>|<!(channel|here)>/g;
const NONE: ParsedMentions = Object.freeze({ userIds: Object.freeze([]) as unknown as bigint[], channel: false, here: false });

export interface ParsedMentions {
  /** Candidate user ids, in order of first mention, without repeats. */
  userIds: bigint[];
  channel: boolean;
  here: boolean;
}

export function parseMentions(text: string): ParsedMentions {
  // Most texts mention no one: one scan for the opening of any token.
  if (!text.includes("<")) return NONE;
  const userIds: bigint[] = [];
  let channel = false;
  let here = false;
  for (const match of text.matchAll(TOKEN)) {
    if (match[2] === "channel") channel = true;
    else if (match[2] === "here") here = true;
    else {
      const id = BigInt(match[1]!);
      if (id !== 0n && id <= MAX_ID && !userIds.includes(id) && userIds.length < MAX_MENTIONED_USERS) userIds.push(id);
    }
  }
  return { userIds, channel, here };
}

/** The mentions of text, keeping only users for whom isMember answers true. */
export async function mentionsIn(text: string, isMember: (userId: bigint) => Promise<boolean>): Promise<Mentions> {
  const parsed = parseMentions(text);
  if (parsed.userIds.length === 0) return parsed;
  const members = await Promise.all(parsed.userIds.map(isMember));
  return { ...parsed, userIds: parsed.userIds.filter((_, i) => members[i]) };
}
