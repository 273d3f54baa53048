/**
 * Request validation. Every failure is INVALID_ARGUMENT with a message that
 * starts with the field's proto name, so clients can point at the input.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { z } from "zod";
import { MAX_ID } from "../core/ids.js";

export function invalid(field: string, reason: string): ConnectError {
  return new ConnectError(`${field}: ${reason}`, Code.InvalidArgument);
}

/** A required id: non-zero and within the signed 64-bit range ids use. */
export function requireId(field: string, value: bigint): bigint {
  if (value === 0n) throw invalid(field, "required");
  if (value > MAX_ID) throw invalid(field, "not a valid id");
  return value;
}

/** An optional id bound such as a cursor: 0 means unset. */
export function optionalId(field: string, value: bigint): bigint | undefined {
  if (value === 0n) return undefined;
  if (value > MAX_ID) throw invalid(field, "not a valid id");
  return value;
}

/** Length in Unicode code points, which is what users count as characters. */
export function codePointLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

// C0 and C1 controls, which have no place in names or keys.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Text may carry line breaks and tabs, but no other control characters.
const TEXT_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

export function requireText(field: string, value: string, maxLength: number): string {
  if (value.trim() === "") throw invalid(field, "must not be empty");
  const length = codePointLength(value);
  if (length > maxLength) throw invalid(field, `must be at most ${maxLength} characters (got ${length})`);
  if (TEXT_CONTROL.test(value)) throw invalid(field, "must not contain control characters");
  return value;
}

export function requireName(field: string, value: string, maxLength: number): string {
  const trimmed = value.trim();
  if (trimmed === "") throw invalid(field, "must not be empty");
  const length = codePointLength(trimmed);
  if (length > maxLength) throw invalid(field, `must be at most ${maxLength} characters (got ${length})`);
  if (CONTROL.test(trimmed)) throw invalid(field, "must not contain control characters");
  return trimmed;
}

export function optionalShortText(field: string, value: string, maxLength: number): string {
  const length = codePointLength(value);
  if (length > maxLength) throw invalid(field, `must be at most ${maxLength} characters (got ${length})`);
  if (CONTROL.test(value)) throw invalid(field, "must not contain control characters");
  return value;
}

const emailSchema = z.email();

export function requireEmail(field: string, value: string): string {
  const email = value.trim().toLowerCase();
  if (email === "") throw invalid(field, "required");
  if (email.length > 254) throw invalid(field, "must be at most 254 characters");
  if (!emailSchema.safeParse(email).success) throw invalid(field, `not a valid email address: ${JSON.stringify(value)}`);
  return email;
}

export function channelName(field: string, value: string): string {
  const name = value.trim().toLowerCase();
  if (name === "") throw invalid(field, "required");
  if (name.length > 80) throw invalid(field, `must be at most 80 characters (got ${name.length})`);
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) {
    throw invalid(field, "may contain only a-z, 0-9, '-' and '_', starting with a letter or digit");
  }
  return name;
}

/** A page size: 0 means the default; above the maximum is an error, not silently clamped. */
export function pageSize(field: string, value: number, defaultSize: number, maxSize: number): number {
  if (value === 0) return defaultSize;
  if (value > maxSize) throw invalid(field, `must be at most ${maxSize} (got ${value})`);
  return value;
}

export function enumValue<T extends number>(field: string, value: T, allowed: readonly T[]): T {
  if (!allowed.includes(value)) throw invalid(field, `unknown value ${value}`);
  return value;
}
