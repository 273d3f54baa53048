/**
 * Opaque page tokens for id-ordered listings. A token names the listing it
 * belongs to, so a token from one listing is rejected by another.
 */
import { invalid } from "./validate.js";

export function encodePageToken(listing: string, lastId: bigint): string {
  return Buffer.from(`${listing}:${lastId}`).toString("base64url");
}

/** The id after which the page starts; 0 for the first page. */
export function decodePageToken(field: string, listing: string, token: string): bigint {
  if (token === "") return 0n;
  const text = /^[A-Za-z0-9_-]{1,64}$/.test(token) ? Buffer.from(token, "base64url").toString() : "";
  const match = /^([a-z_]+):(\d{1,19})$/.exec(text);
  if (!match || match[1] !== listing) throw invalid(field, "invalid page token");
  return BigInt(match[2]!);
}

/**
 * Cuts a listing read with limit + 1 rows into the page and the token of the
 * next one (empty when this page is the last).
 */
export function paginate<T>(
  rows: T[],
  limit: number,
  listing: string,
  idOf: (row: T) => bigint,
): { page: T[]; nextPageToken: string } {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { page, nextPageToken: rows.length > limit && last !== undefined ? encodePageToken(listing, idOf(last)) : "" };
}
