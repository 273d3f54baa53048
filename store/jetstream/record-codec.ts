/**
 * A FAST record in the write-behind stream: a chat.v1.Message in binary
 * protobuf, so records written by earlier versions still decode. The store
 * keeps its own codec rather than the chat layer's converters: the log sits
 * below the domain.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { timestampOfId } from "../../core/ids.js";
import { MessageSchema } from "../../gen/chat/v1/message_pb.js";
import type { MessageRecord } from "../store.js";

export function encodeRecord(record: MessageRecord): Uint8Array {
  return toBinary(
    MessageSchema,
    create(MessageSchema, {
      id: record.id,
      channelId: record.channelId,
      senderId: record.senderId,
      text: record.text,
      createdAt: timestampFromMs(timestampOfId(record.id)),
      clientMsgId: record.clientMsgId,
      threadRootId: record.threadRootId ?? 0n,
      alsoToChannel: record.alsoToChannel ?? false,
      mentionedUserIds: record.mentions?.userIds ?? [],
      mentionsChannel: record.mentions?.channel ?? false,
      mentionsHere: record.mentions?.here ?? false,
    }),
  );
}

/** Throws on bytes that are not a record (the writer drops those). */
export function decodeRecord(data: Uint8Array): MessageRecord {
  const m = fromBinary(MessageSchema, data);
  if (m.id === 0n || m.channelId === 0n || m.senderId === 0n) throw new Error("record without id, channel or sender");
  return {
    id: m.id,
    channelId: m.channelId,
    senderId: m.senderId,
    text: m.text,
    clientMsgId: m.clientMsgId,
    threadRootId: m.threadRootId,
    alsoToChannel: m.alsoToChannel,
    mentions: { userIds: m.mentionedUserIds, channel: m.mentionsChannel, here: m.mentionsHere },
  };
}
