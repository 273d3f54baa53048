/** Binds the domain services to their protobuf service definitions. */
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { ChannelService } from "../gen/chat/v1/channel_pb.js";
import { MessageService } from "../gen/chat/v1/message_pb.js";
import { UserService } from "../gen/chat/v1/user_pb.js";
import { CreateSocketTicketResponseSchema, SocketService } from "../gen/chat/v1/socket_pb.js";
import type { SocketTickets } from "../chat/socket-tickets.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Principal, UserPrincipal } from "../chat/auth.js";
import { principalKey, type AccessPolicy } from "./interceptors.js";
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

function principal(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  // The auth interceptor runs first for every non-public method; reaching here without is a bug.
  if (!p) throw new ConnectError("not authenticated", Code.Unauthenticated);
  return p;
}

function user(ctx: HandlerContext): UserPrincipal {
  const p = principal(ctx);
  if (p.kind !== "user") throw new ConnectError("this method needs a user token", Code.PermissionDenied);
  return p;
}

export interface ChatHandlers {
  users: Users;
  channels: Channels;
  messages: Messages;
  tickets: SocketTickets;
}

/** `draining` aborts when the server starts draining: streams of posts stop taking new posts then. */
export function registerChatServices(router: ConnectRouter, h: ChatHandlers, draining?: AbortSignal): void {
  router.service(UserService, {
    createUser: (req, ctx) => h.users.createUser(principal(ctx), req),
    issueToken: (req, ctx) => h.users.issueToken(principal(ctx), req),
    getUser: (req, ctx) => h.users.getUser(principal(ctx), req),
    listUsers: (req, ctx) => h.users.listUsers(principal(ctx), req),
  });
  router.service(ChannelService, {
    createChannel: (req, ctx) => h.channels.createChannel(user(ctx), req),
    getChannel: (req, ctx) => h.channels.getChannel(user(ctx), req),
    updateChannel: (req, ctx) => h.channels.updateChannel(user(ctx), req),
    listMyChannels: (req, ctx) => h.channels.listMyChannels(user(ctx), req),
    joinChannel: (req, ctx) => h.channels.joinChannel(user(ctx), req),
    leaveChannel: (req, ctx) => h.channels.leaveChannel(user(ctx), req),
    addMember: (req, ctx) => h.channels.addMember(user(ctx), req),
    removeMember: (req, ctx) => h.channels.removeMember(user(ctx), req),
    listMembers: (req, ctx) => h.channels.listMembers(user(ctx), req),
    openDirectMessage: (req, ctx) => h.channels.openDirectMessage(user(ctx), req),
    updateMembership: (req, ctx) => h.channels.updateMembership(user(ctx), req),
  });
  router.service(MessageService, {
    postMessage: (req, ctx) => h.messages.postMessage(user(ctx), req),
    streamPostMessages: (requests, ctx) => h.messages.streamPostMessages(user(ctx), requests, draining),
    listMessages: async (req, ctx) => {
      const { response, etag } = await h.messages.listMessages(user(ctx), req);
      // Messages change (edits, deletes, reactions), so a cache must ask each
      // time; a Connect GET that sends the ETag back gets 304 while the page is
      // unchanged (connect-node-adapter.ts). Per user: never shared caches.
      ctx.responseHeader.set("cache-control", "private, no-cache");
      ctx.responseHeader.set("etag", etag);
      return response;
    },
    listThreadReplies: (req, ctx) => (ctx.responseHeader.set("cache-control", "private, no-cache"), h.messages.listThreadReplies(user(ctx), req)),
    editMessage: (req, ctx) => h.messages.editMessage(user(ctx), req),
    deleteMessage: (req, ctx) => h.messages.deleteMessage(user(ctx), req),
    addReaction: (req, ctx) => h.messages.addReaction(user(ctx), req),
    removeReaction: (req, ctx) => h.messages.removeReaction(user(ctx), req),
    pinMessage: (req, ctx) => h.messages.pinMessage(user(ctx), req),
    unpinMessage: (req, ctx) => h.messages.unpinMessage(user(ctx), req),
    listPins: (req, ctx) => (ctx.responseHeader.set("cache-control", "private, no-cache"), h.messages.listPins(user(ctx), req)),
  });
  router.service(SocketService, {
    createSocketTicket: async (_req, ctx) => {
      const { ticket, expiresAt } = h.tickets.issue(user(ctx));
      return create(CreateSocketTicketResponseSchema, { ticket, expiresAt: timestampFromMs(expiresAt) });
    },
  });
}
