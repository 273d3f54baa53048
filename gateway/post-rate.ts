/**
 * The post rate limit of one socket: a token bucket of `postBurst` tokens
 * refilled at `postsPerSecond`, kept in the socket's own limits object (no
 * timer per socket: tokens are counted up when a post comes).
 */
export interface PostBucket {
  postTokens: number;
  postTokensAt: number;
}

/** Takes one token for a post at `now` (ms); false when the bucket is empty. */
export function takePostToken(bucket: PostBucket, now: number, rate: { postsPerSecond: number; postBurst: number }): boolean {
  bucket.postTokens = Math.min(rate.postBurst, bucket.postTokens + ((now - bucket.postTokensAt) / 1000) * rate.postsPerSecond);
  bucket.postTokensAt = now;
  if (bucket.postTokens < 1) return false;
  bucket.postTokens--;
  return true;
}
