import { BadRequestException } from '@nestjs/common';

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface PageRequest {
  limit: number;
  /** The primary key after which the page starts (decoded from the opaque cursor). */
  after?: string;
}

/** Parses `?limit=` (default 50, max 200) and the opaque `?cursor=`; a bad value names the field. */
export function pageRequest(query: { limit?: unknown; cursor?: unknown }): PageRequest {
  let limit = 50;
  if (query.limit !== undefined) {
    if (typeof query.limit !== 'string' || !/^\d{1,4}$/.test(query.limit) || +query.limit < 1 || +query.limit > 200) {
      throw new BadRequestException(['limit must be a whole number from 1 to 200']);
    }
    limit = +query.limit;
  }
  let after: string | undefined;
  if (query.cursor !== undefined) {
    const decoded = typeof query.cursor === 'string' && query.cursor.length <= 512 ? Buffer.from(query.cursor, 'base64url').toString('utf8') : '';
    // A key never holds U+0000 (and PostgreSQL cannot compare it in text): such a cursor is forged.
    if (!decoded.startsWith('k:') || decoded.includes('\0')) throw new BadRequestException(['cursor is not a cursor this server issued']);
    after = decoded.slice(2);
  }
  return { limit, after };
}

/** Builds a page from `limit + 1` rows fetched in key order. */
export function toPage<R, T>(rows: R[], req: PageRequest, key: (r: R) => string, view: (r: R) => T): Page<T> {
  const more = rows.length > req.limit;
  const items = more ? rows.slice(0, req.limit) : rows;
  const last = items[items.length - 1];
  return {
    items: items.map(view),
    next_cursor: more && last ? Buffer.from(`k:${key(last)}`).toString('base64url') : null,
  };
}
