/**
 * Messages as one viewer sees them: the same stored messages for everyone,
 * plus Reaction.me, which emoji this viewer reacted with. Pages without
 * reactions cost nothing extra; others one read of the viewer's reactions
 * over the page's id range.
 */
import type { Message } from "../../gen/chat/v1/message_pb.js";
import type { ChatStore, StoredMessage } from "../../store/store.js";
import { messageToProto } from "../convert.js";

const NONE: ReadonlySet<string> = new Set();

export async function viewMessages(store: ChatStore, viewerId: bigint, channelId: bigint, messages: readonly StoredMessage[]): Promise<Message[]> {
  let low: bigint | undefined;
  let high: bigint | undefined;
  for (const m of messages) {
    if (m.reactions.length === 0) continue;
    if (low === undefined || m.id < low) low = m.id;
    if (high === undefined || m.id > high) high = m.id;
  }
  if (low === undefined || high === undefined) return messages.map((m) => messageToProto(m, NONE));
  const mine = new Map<bigint, Set<string>>();
  for (const r of await store.reactionsOfUser(channelId, viewerId, low, high)) {
    let set = mine.get(r.messageId);
    if (!set) mine.set(r.messageId, (set = new Set()));
    set.add(r.emoji);
  }
  return messages.map((m) => messageToProto(m, mine.get(m.id) ?? NONE));
}
