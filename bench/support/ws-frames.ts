/**
 * RFC 6455 framing for the raw-TCP WebSocket clients of the benchmarks (why:
 * the lean client and both load-generator workers parse the server's unmasked
 * frames and build masked client frames the same way).
 */
import { randomBytes } from "node:crypto";

/** A masked client frame (clients must mask), FIN set. */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const n = payload.length;
  const headerLength = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(headerLength + 4 + n);
  out[0] = 0x80 | opcode;
  if (n < 126) out[1] = 0x80 | n;
  else if (n < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(n), 2);
  }
  mask.copy(out, headerLength);
  for (let i = 0; i < n; i++) out[headerLength + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

/**
 * Calls onFrame for every complete server frame (unmasked: FIN/opcode byte,
 * length, payload) at the start of `pending`, in order; the payload is a slice
 * of `pending`. Returns the rest: the start of an incomplete frame, or empty.
 */
export function eachServerFrame(pending: Buffer, onFrame: (opcode: number, payload: Buffer, fin: boolean) => void): Buffer {
  for (;;) {
    if (pending.length < 2) break;
    const b0 = pending[0]!;
    let length = pending[1]! & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (pending.length < 4) break;
      length = pending.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (pending.length < 10) break;
      length = Number(pending.readBigUInt64BE(2));
      offset = 10;
    }
    if (pending.length < offset + length) break;
    const payload = pending.subarray(offset, offset + length);
    pending = pending.subarray(offset + length);
    onFrame(b0 & 0x0f, payload, (b0 & 0x80) !== 0);
  }
  return pending;
}
