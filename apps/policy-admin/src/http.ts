import type { MiddlewareHandler } from 'hono';
import { readJsonBody } from '@janus/http';
import { preconditionFailed } from './problem.js';
import type { AdminEnv } from './routes/common.js';

/** A whole policy document is small; this only bounds memory. */
export const MAX_BODY_BYTES = 1_048_576;

/**
 * Reads a JSON body before any validation (415 / 413 / 400, see readJsonBody). Routes then read the
 * parsed value with `c.get('body')`. With `optional`, a request without a body passes (as `undefined`).
 */
export function jsonBody(opts: { optional?: boolean } = {}): MiddlewareHandler<AdminEnv> {
  return async (c, next) => {
    const body = await readJsonBody(c, { cap: MAX_BODY_BYTES, ...(opts.optional ? { optional: true } : {}) });
    if (!body.ok) return body.response;
    c.set('body', body.value);
    return next();
  };
}

/**
 * `If-Match: <version>` (also `"<version>"` or `W/"<version>"`, as our ETags are quoted).
 * Absent or `*` → no precondition. A value that names no version can never match: 412.
 */
export function parseIfMatch(header: string | undefined): { ok: true; expected: number | undefined } | { ok: false; response: Response } {
  if (header === undefined || header.trim() === '' || header.trim() === '*') return { ok: true, expected: undefined };
  const m = /^\s*(?:W\/)?"?(\d{1,9})"?\s*$/.exec(header);
  if (!m) return { ok: false, response: preconditionFailed(-1, `If-Match "${header.slice(0, 40)}" is not a policy version`) };
  return { ok: true, expected: Number(m[1]) };
}

export const etag = (version: number) => ({ etag: `"${version}"` });
