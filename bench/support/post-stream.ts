/**
 * A lean StreamPostMessages client over raw h2c gRPC framing (5-byte
 * envelopes), so that benchmark load costs less CPU than the server it loads.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import http2 from "node:http2";
import {
  StreamPostMessagesRequestSchema,
  StreamPostMessagesResponseSchema,
  type StreamPostMessagesResponse,
} from "../../gen/chat/v1/message_pb.js";

export interface PostStream {
  /** Posts one message; resolves with the answer, in order. */
  post(channelId: bigint, text: string, clientMsgId?: string): Promise<StreamPostMessagesResponse>;
  /** Ends the stream once every answer arrived. */
  end(): Promise<void>;
}

export function openPostStream(session: http2.ClientHttp2Session, token: string): PostStream {
  const req = session.request({
    ":method": "POST",
    ":path": "/chat.v1.MessageService/StreamPostMessages",
    "content-type": "application/grpc+proto",
    te: "trailers",
    authorization: `Bearer ${token}`,
  });
  const waiting: Array<{ resolve: (r: StreamPostMessagesResponse) => void; reject: (e: unknown) => void }> = [];
  let pending: Buffer = Buffer.alloc(0);
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
    for (const w of waiting.splice(0)) w.reject(err);
  };
  req.on("data", (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 5) {
      const length = pending.readUInt32BE(1);
      if (pending.length < 5 + length) break;
      const answer = fromBinary(StreamPostMessagesResponseSchema, pending.subarray(5, 5 + length));
      pending = pending.subarray(5 + length);
      waiting.shift()?.resolve(answer);
    }
  });
  req.on("trailers", (t) => {
    if (t["grpc-status"] !== "0") fail(new Error(`stream ended: ${JSON.stringify(t)}`));
  });
  req.on("error", fail);
  const ended = new Promise<void>((resolve) => req.on("close", () => resolve()));
  return {
    post(channelId, text, clientMsgId = "") {
      if (failure) return Promise.reject(failure);
      const body = toBinary(StreamPostMessagesRequestSchema, create(StreamPostMessagesRequestSchema, { channelId, text, clientMsgId }));
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        req.write(frame);
      });
    },
    async end() {
      req.end();
      await ended;
    },
  };
}
