/** Binds the domain services to their protobuf service definitions. */
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { ChannelService } from "../gen/chat/v1/channel_pb.js";
import { MessageService } from "../gen/chat/v1/message_pb.js";
import { UserService } from "../gen/chat/v1/user_pb.js";
import { CreateSocketTicketResponseSchema, SocketService } from "../gen/chat/v1/socket_pb.js";
import type { SocketTickets } from "../chat/socket-tickets.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { principalOf, userOf, type AccessPolicy } from "./interceptors.js";
import type { ChannelService as Channels } from "../chat/channels/channel-service.js";
import type { MessageService as Messages } from "../chat/messages/message-service.js";
import type { UserService as Users } from "../chat/users.js";

/** The chat services this server speaks (health and reflection come on top). */
export const CHAT_SERVICES: DescService[] = [UserService, ChannelService, MessageService, SocketService];

/** Who may call what; chat methods not listed need a user token. */
export const CHAT_POLICIES: Record<string, AccessPolicy> = {
  "chat.v1.UserService/CreateUser": "admin",
  "chat.v1.UserService/IssueToken": "admin",
  "chat.v1.UserService/GetUser": "admin-or-user",
  "chat.v1.UserService/ListUsers": "admin-or-user",
};

export interface ChatHandlers {
  users: Users;
  channels: Channels;
  messages: Messages;
  tickets: SocketTickets;
}

/** `draining` aborts when the server starts draining: streams of posts stop taking new posts then. */
export function registerChatServices(router: ConnectRouter, h: ChatHandlers, draining?: AbortSignal): void {
  router.service(UserService, {
    createUser: (req, ctx) => h.users.createUser(principalOf(ctx), req),
    issueToken: (req, ctx) => h.users.issueToken(principalOf(ctx), req),
    getUser: (req, ctx) => h.users.getUser(principalOf(ctx), req),
    listUsers: (req, ctx) => h.users.listUsers(principalOf(ctx), req),
  });
  router.service(ChannelService, {
    createChannel: (req, ctx) => h.channels.createChannel(userOf(ctx), req),
    getChannel: (req, ctx) => h.channels.getChannel(userOf(ctx), req),
    updateChannel: (req, ctx) => h.channels.updateChannel(userOf(ctx), req),
    listMyChannels: (req, ctx) => h.channels.listMyChannels(userOf(ctx), req),
    joinChannel: (req, ctx) => h.channels.joinChannel(userOf(ctx), req),
    leaveChannel: (req, ctx) => h.channels.leaveChannel(userOf(ctx), req),
    addMember: (req, ctx) => h.channels.addMember(userOf(ctx), req),
    removeMember: (req, ctx) => h.channels.removeMember(userOf(ctx), req),
    listMembers: (req, ctx) => h.channels.listMembers(userOf(ctx), req),
    openDirectMessage: (req, ctx) => h.channels.openDirectMessage(userOf(ctx), req),
    updateMembership: (req, ctx) => h.channels.updateMembership(userOf(ctx), req),
  });
  router.service(MessageService, {
    postMessage: (req, ctx) => h.messages.postMessage(userOf(ctx), req),
    streamPostMessages: (requests, ctx) => h.messages.streamPostMessages(userOf(ctx), requests, draining),
    listMessages: async (req, ctx) => {
      const { response, etag } = await h.messages.listMessages(userOf(ctx), req);
      // Messages change (edits, deletes, reactions), so a cache must ask each
      // time; a Connect GET that sends the ETag back gets 304 while the page is
      // unchanged (connect-node-adapter.ts). Per user: never shared caches.
      ctx.responseHeader.set("cache-control", "private, no-cache");
      ctx.responseHeader.set("etag", etag);
      return response;
    },
    listThreadReplies: (req, ctx) => (ctx.responseHeader.set("cache-control", "private, no-cache"), h.messages.listThreadReplies(userOf(ctx), req)),
    editMessage: (req, ctx) => h.messages.editMessage(userOf(ctx), req),
    deleteMessage: (req, ctx) => h.messages.deleteMessage(userOf(ctx), req),
    addReaction: (req, ctx) => h.messages.addReaction(userOf(ctx), req),
    removeReaction: (req, ctx) => h.messages.removeReaction(userOf(ctx), req),
    pinMessage: (req, ctx) => h.messages.pinMessage(userOf(ctx), req),
    unpinMessage: (req, ctx) => h.messages.unpinMessage(userOf(ctx), req),
    listPins: (req, ctx) => (ctx.responseHeader.set("cache-control", "private, no-cache"), h.messages.listPins(userOf(ctx), req)),
  });
  router.service(SocketService, {
    createSocketTicket: async (_req, ctx) => {
      const { ticket, expiresAt } = h.tickets.issue(userOf(ctx));
      return create(CreateSocketTicketResponseSchema, { ticket, expiresAt: timestampFromMs(expiresAt) });
    },
  });
}
