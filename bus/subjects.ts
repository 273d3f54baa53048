/**
 * Every bus subject is built here, under one configurable prefix, so that the
 * API, the gateways and NATS permissions agree on the names.
 */
import { SUBJECT_PREFIX_RULE, SUBJECT_PREFIX_RULE_TEXT } from "../core/config.js";

export interface Subjects {
  readonly prefix: string;
  /** Events of one channel: messages, joins, leaves, updates. */
  channel(channelId: bigint): string;
  /** Events that change what one user's sockets receive: joined, left, DM opened, own flags. */
  user(userId: bigint): string;
  /** FAST messages of one channel on their way to the store (the write-behind log). */
  fastLog(channelId: bigint): string;
  /** Every fastLog subject: what the write-behind stream captures. */
  readonly fastLogAll: string;
  /** Name of the write-behind JetStream stream (stream names allow no dots). */
  readonly fastLogStream: string;
  /** Parses a channel subject back to its id; undefined for any other subject. */
  parseChannel(subject: string): bigint | undefined;
  /** Parses a user subject back to its id; undefined for any other subject. */
  parseUser(subject: string): bigint | undefined;
}

export function createSubjects(prefix: string): Subjects {
  if (!SUBJECT_PREFIX_RULE.test(prefix)) {
    throw new Error(`subject prefix must be ${SUBJECT_PREFIX_RULE_TEXT}, got ${JSON.stringify(prefix)}`);
  }
  const channelPrefix = `${prefix}.ch.`;
  const userPrefix = `${prefix}.user.`;
  const fastLogPrefix = `${prefix}.fastlog.ch.`;
  const parse = (subject: string, head: string): bigint | undefined => {
    if (!subject.startsWith(head)) return undefined;
    const rest = subject.slice(head.length);
    return /^\d{1,20}$/.test(rest) ? BigInt(rest) : undefined;
  };
  return {
    prefix,
    channel: (channelId) => channelPrefix + channelId.toString(),
    user: (userId) => userPrefix + userId.toString(),
    fastLog: (channelId) => fastLogPrefix + channelId.toString(),
    fastLogAll: `${fastLogPrefix}>`,
    fastLogStream: `${prefix.replaceAll(".", "_")}_fastlog`,
    parseChannel: (subject) => parse(subject, channelPrefix),
    parseUser: (subject) => parse(subject, userPrefix),
  };
}
