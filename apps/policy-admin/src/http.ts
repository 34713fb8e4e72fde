import { invalidRequest, jsonBody as readBody } from '@janus/http';

/** A whole policy document is small; this only bounds memory. */
export const MAX_BODY_BYTES = 1_048_576;

/** The JSON body (415 / 413 / 400 before any validation); routes read it with `c.get('body')`. */
export const jsonBody = (opts: { optional?: boolean } = {}) => readBody({ cap: MAX_BODY_BYTES, ...opts });

/**
 * `If-Match: <version>` (also `"<version>"` or `W/"<version>"`, as our ETags are quoted).
 * Absent or `*` → no precondition. A value that is not a version is bad input: 400 naming
 * `If-Match` (not 412, whose `currentVersion` would have to be made up).
 */
export function parseIfMatch(header: string | undefined): { ok: true; expected: number | undefined } | { ok: false; response: Response } {
  if (header === undefined || header.trim() === '' || header.trim() === '*') return { ok: true, expected: undefined };
  const m = /^\s*(?:W\/)?"?(\d{1,9})"?\s*$/.exec(header);
  if (!m) return { ok: false, response: invalidRequest([{ path: 'If-Match', message: `"${header.slice(0, 40)}" is not a policy version (an integer, or an ETag of one: "7")` }]) };
  return { ok: true, expected: Number(m[1]) };
}

export const etag = (version: number) => ({ etag: `"${version}"` });
