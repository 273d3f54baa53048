/**
 * UserService: accounts and tokens, and the workspace's directory: every
 * user's name is visible to everyone in the workspace, a user's email only to
 * the admin and to the user themself.
 */
import { create } from "@bufbuild/protobuf";
import {
  CreateUserResponseSchema,
  GetUserResponseSchema,
  IssueTokenResponseSchema,
  ListUsersResponseSchema,
  type CreateUserRequest,
  type CreateUserResponse,
  type GetUserRequest,
  type GetUserResponse,
  type IssueTokenRequest,
  type IssueTokenResponse,
  type ListUsersRequest,
  type ListUsersResponse,
} from "../gen/chat/v1/user_pb.js";
import { AlreadyExistsError } from "../store/store.js";
import type { Principal } from "./auth.js";
import { ts, userToProto } from "./convert.js";
import type { ServiceDeps } from "./deps.js";
import { notFound } from "./errors.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodePageToken, paginate } from "./page-token.js";
import { invalid, pageSize, requireEmail, requireId, requireName } from "./validate.js";

export interface UserService {
  createUser(caller: Principal, req: CreateUserRequest): Promise<CreateUserResponse>;
  issueToken(caller: Principal, req: IssueTokenRequest): Promise<IssueTokenResponse>;
  getUser(caller: Principal, req: GetUserRequest): Promise<GetUserResponse>;
  listUsers(caller: Principal, req: ListUsersRequest): Promise<ListUsersResponse>;
}

export function createUserService(deps: ServiceDeps): UserService {
  const { store, ids, auth, now } = deps;

  return {
    async createUser(caller, req) {
      const name = requireName("name", req.name, 80);
      const email = requireEmail("email", req.email);
      const user = { id: ids.next(), name, email, createdAt: now() };
      try {
        await store.createUser(user);
      } catch (err) {
        if (err instanceof AlreadyExistsError) {
          throw new ConnectError(`email: ${email} is already used by another user`, Code.AlreadyExists, undefined, undefined, err);
        }
        throw err;
      }
      return create(CreateUserResponseSchema, { user: userToProto(user, caller) });
    },

    async issueToken(_caller, req) {
      const userId = requireId("user_id", req.userId);
      if (req.ttlSeconds > auth.maxTokenTtlSeconds) {
        throw invalid("ttl_seconds", `must be at most ${auth.maxTokenTtlSeconds} (got ${req.ttlSeconds})`);
      }
      if (!(await store.getUser(userId))) throw notFound(`user ${userId}`);
      const { token, expiresAt } = await auth.issueToken(userId, req.ttlSeconds);
      return create(IssueTokenResponseSchema, { token, expiresAt: ts(expiresAt) });
    },

    async getUser(caller, req) {
      const userId = requireId("user_id", req.userId);
      const user = await store.getUser(userId);
      if (!user) throw notFound(`user ${userId}`);
      return create(GetUserResponseSchema, { user: userToProto(user, caller) });
    },

    async listUsers(caller, req) {
      const limit = pageSize("page_size", req.pageSize, 50, 200);
      const after = decodePageToken("page_token", "users", req.pageToken);
      const { page, nextPageToken } = paginate(await store.listUsers(after, limit + 1), limit, "users", (u) => u.id);
      return create(ListUsersResponseSchema, { users: page.map((u) => userToProto(u, caller)), nextPageToken });
    },
  };
}
