/**
 * Rows this replica has just written and expects to read back once, soon: a code stored at
 * /authorize and redeemed at the token endpoint a moment later, a refresh token presented at the
 * next refresh. `take` hands a row out once and forgets it, so that first read skips the database,
 * and every later read (a replay, a retry) goes to the database and sees what is there.
 *
 * Only for rows whose columns do not change until the conditional write that uses them up, and only
 * where that write checks in the database everything that can change meanwhile (used, revoked,
 * expired, deleted, by this replica or another): a row taken here is never the authority, it only
 * supplies the columns the write does not touch. Bounded: beyond `max` rows the oldest are
 * forgotten, and rows past their `until` are dropped when met.
 */
export class WrittenHere<V> {
  private readonly rows = new Map<string, { value: V; until: number }>();

  constructor(private readonly max = 10_000) {}

  get size(): number {
    return this.rows.size;
  }

  /** Remembers `value` under `key` until `until` (ms since the epoch). */
  put(key: string, value: V, until: number): void {
    const now = Date.now();
    // Oldest first: drop the expired ones at the front, then make room.
    for (const [k, row] of this.rows) {
      if (row.until > now && this.rows.size < this.max) break;
      this.rows.delete(k);
    }
    this.rows.set(key, { value, until });
  }

  /**
   * The row under `key`, once (undefined when absent or expired); forgotten either way, so the
   * caller gets the only reference to it and needs no copy (a `put` must not keep one either).
   */
  take(key: string): V | undefined {
    const row = this.rows.get(key);
    if (!row) return undefined;
    this.rows.delete(key);
    return row.until > Date.now() ? row.value : undefined;
  }
}
