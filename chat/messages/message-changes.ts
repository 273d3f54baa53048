/**
 * Changing a message after it was posted: edits, deletes, reactions and
 * pins, with who may do what, and the change published as its event once the
 * store has logged it.
 *
 * By delivery mode: EPHEMERAL messages are stored nowhere, so none of this
 * applies to them (FAILED_PRECONDITION). In FAST channels whose write-behind
 * log reaches the store later (scale-out), a change to a message that is
 * not stored yet waits for its write (briefly), so an edit racing the
 * asynchronous write is applied after it, never lost under it.
 */
import { create } from "@bufbuild/protobuf";
import {
  AddReactionResponseSchema,
  DeleteMessageResponseSchema,
  EditMessageResponseSchema,
  ListPinsResponseSchema,
  PinMessageResponseSchema,
  RemoveReactionResponseSchema,
  UnpinMessageResponseSchema,
  type AddReactionRequest,
  type AddReactionResponse,
  type DeleteMessageRequest,
  type DeleteMessageResponse,
  type EditMessageRequest,
  type EditMessageResponse,
  type ListPinsRequest,
  type ListPinsResponse,
  type PinMessageRequest,
  type PinMessageResponse,
  type RemoveReactionRequest,
  type RemoveReactionResponse,
  type UnpinMessageRequest,
  type UnpinMessageResponse,
} from "../../gen/chat/v1/message_pb.js";
import type { ChannelRecord, MessageChange, StoredMessage } from "../../store/store.js";
import type { UserPrincipal } from "../auth.js";
import type { ChannelAccess } from "../channels/access.js";
import { deliveryModeOf } from "../convert.js";
import type { ServiceDeps } from "../deps.js";
import { failedPrecondition, notFound, permissionDenied } from "../errors.js";
import { requireId, requireText } from "../validate.js";
import { publishChanges } from "./change-events.js";
import { requireEmoji } from "./emoji.js";
import { mentionsIn } from "./mentions.js";
import { MAX_TEXT_LENGTH } from "./posting.js";
import type { StoredMessages } from "./stored-messages.js";
import { viewMessages } from "./viewer.js";

/** Distinct emoji one message may carry. */
export const MAX_REACTION_EMOJI = 50;
/** Pins one channel may hold. */
export const MAX_PINS = 100;

export interface MessageChanges {
  editMessage(caller: UserPrincipal, req: EditMessageRequest): Promise<EditMessageResponse>;
  deleteMessage(caller: UserPrincipal, req: DeleteMessageRequest): Promise<DeleteMessageResponse>;
  addReaction(caller: UserPrincipal, req: AddReactionRequest): Promise<AddReactionResponse>;
  removeReaction(caller: UserPrincipal, req: RemoveReactionRequest): Promise<RemoveReactionResponse>;
  pinMessage(caller: UserPrincipal, req: PinMessageRequest): Promise<PinMessageResponse>;
  unpinMessage(caller: UserPrincipal, req: UnpinMessageRequest): Promise<UnpinMessageResponse>;
  listPins(caller: UserPrincipal, req: ListPinsRequest): Promise<ListPinsResponse>;
}

export function createMessageChanges(
  deps: Pick<ServiceDeps, "store" | "events" | "now" | "metrics">,
  access: ChannelAccess,
  stored: StoredMessages,
): MessageChanges {
  const { store, events, now } = deps;

  /** The channel (the caller a member) and the message, which must be stored and not deleted. */
  const target = async (caller: UserPrincipal, req: { channelId: bigint; messageId: bigint }) => {
    const channelId = requireId("channel_id", req.channelId);
    const messageId = requireId("message_id", req.messageId);
    const { channel } = await access.isMember(caller, channelId);
    if (channel.delivery === "ephemeral") throw failedPrecondition("messages of EPHEMERAL channels are not stored: they cannot be changed");
    const message = await stored.find(channel, messageId);
    if (!message || message.deletedAt !== 0) throw notFound(`message ${messageId}`);
    return { channel, message };
  };

  /** Publishes the change's events, each with the message as the change left it. */
  const publish = (channel: ChannelRecord, result: MessageChange, root?: StoredMessage) =>
    publishChanges(events, deliveryModeOf(channel), result.changes, result.message, root);

  /** The message as the caller sees it (Reaction.me). */
  const viewed = async (caller: UserPrincipal, m: StoredMessage) => (await viewMessages(store, caller.userId, m.channelId, [m]))[0]!;

  return {
    async editMessage(caller, req) {
      const text = requireText("text", req.text, MAX_TEXT_LENGTH);
      const { channel, message } = await target(caller, req);
      if (message.senderId !== caller.userId) throw permissionDenied("only its sender may edit a message");
      const mentions = await mentionsIn(text, (userId) => store.getMembership(channel.id, userId).then(Boolean));
      const result = await store.editMessage({ channelId: channel.id, id: message.id, senderId: caller.userId, text, mentions, at: now() });
      await publish(channel, result);
      return create(EditMessageResponseSchema, { message: await viewed(caller, result.message) });
    },

    async deleteMessage(caller, req) {
      const { channel, message } = await target(caller, req);
      if (message.senderId !== caller.userId) {
        // Read fresh (not the posting cache): ownership decides who may delete others' words.
        const { membership } = await access.member(caller, channel.id);
        if (channel.kind !== "group" || membership.role !== "owner") {
          throw permissionDenied("only its sender or an owner of the channel may delete a message");
        }
      }
      const result = await store.deleteMessage(channel.id, message.id, caller.userId, now());
      const root = message.threadRootId !== 0n ? await store.getMessage(channel.id, message.threadRootId) : undefined;
      await publish(channel, result, root);
      return create(DeleteMessageResponseSchema, {});
    },

    async addReaction(caller, req) {
      const emoji = requireEmoji("emoji", req.emoji);
      const { channel, message } = await target(caller, req);
      const result = await store.addReaction({ channelId: channel.id, messageId: message.id, userId: caller.userId, emoji, at: now() }, MAX_REACTION_EMOJI);
      await publish(channel, result);
      return create(AddReactionResponseSchema, { reactions: (await viewed(caller, result.message)).reactions });
    },

    async removeReaction(caller, req) {
      const emoji = requireEmoji("emoji", req.emoji);
      const { channel, message } = await target(caller, req);
      const result = await store.removeReaction({ channelId: channel.id, messageId: message.id, userId: caller.userId, emoji, at: now() });
      await publish(channel, result);
      return create(RemoveReactionResponseSchema, { reactions: (await viewed(caller, result.message)).reactions });
    },

    async pinMessage(caller, req) {
      const { channel, message } = await target(caller, req);
      const result = await store.pinMessage(channel.id, message.id, caller.userId, now(), MAX_PINS);
      await publish(channel, result);
      return create(PinMessageResponseSchema, { message: await viewed(caller, result.message) });
    },

    async unpinMessage(caller, req) {
      const { channel, message } = await target(caller, req);
      const result = await store.unpinMessage(channel.id, message.id, caller.userId, now());
      await publish(channel, result);
      return create(UnpinMessageResponseSchema, {});
    },

    async listPins(caller, req) {
      const channelId = requireId("channel_id", req.channelId);
      await access.isMember(caller, channelId);
      const pins = await store.listPins(channelId);
      return create(ListPinsResponseSchema, { messages: await viewMessages(store, caller.userId, channelId, pins) });
    },
  };
}
