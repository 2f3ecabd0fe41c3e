/**
 * A token bucket per key (a credential): `perMinute` requests a minute on average, bursts of up to
 * `perMinute`. In-process: with several API processes each allows the rate (set it per process).
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /**
   * Takes one token for `key`. Returns 0 when the request may go on, else the whole seconds to
   * wait before the next one will (the `Retry-After` value).
   */
  take(key: string, perMinute: number): number {
    const now = this.#now();
    const perMs = perMinute / 60_000;
    const bucket = this.#buckets.get(key) ?? { tokens: perMinute, at: now };
    bucket.tokens = Math.min(perMinute, bucket.tokens + (now - bucket.at) * perMs);
    bucket.at = now;
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000));
  }

  /** Forgets full buckets, so keys that went quiet do not accumulate. */
  sweep(perMinuteOf: (key: string) => number): void {
    const now = this.#now();
    for (const [key, bucket] of this.#buckets) {
      const perMinute = perMinuteOf(key);
      if (bucket.tokens + (now - bucket.at) * (perMinute / 60_000) >= perMinute) this.#buckets.delete(key);
    }
  }
}
