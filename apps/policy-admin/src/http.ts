import type { MiddlewareHandler } from 'hono';
import { PROBLEM, problem, preconditionFailed } from './problem.js';
import type { AdminEnv } from './routes/common.js';

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json\s*(;.*)?$/i;
/** A whole policy document is small; this only bounds memory. */
export const MAX_BODY_BYTES = 1_048_576;

/**
 * Reads a JSON body before any validation: a body that is not JSON is 415, too big 413,
 * unparsable 400. Routes then read the parsed value with `c.get('body')`.
 * With `optional`, a request without a body passes (as `undefined`).
 */
export function jsonBody(opts: { optional?: boolean } = {}): MiddlewareHandler<AdminEnv> {
  return async (c, next) => {
    const contentType = c.req.header('content-type');
    const length = c.req.header('content-length');
    // A bodiless POST may still arrive with an (empty) body stream and no Content-Length (curl -X POST
    // sends neither), so look at the bytes, not the headers.
    if (opts.optional && !contentType && (length === undefined || length === '0')) {
      const text = c.req.raw.body === null ? '' : await c.req.text();
      if (text.trim() === '') {
        c.set('body', undefined);
        return next();
      }
    }
    if (!contentType || !JSON_TYPE.test(contentType)) {
      return problem(415, PROBLEM.unsupportedMediaType, 'Unsupported media type', {
        detail: 'the body must be JSON (Content-Type: application/json)',
      });
    }
    if (length !== undefined && /^\d+$/.test(length) && Number(length) > MAX_BODY_BYTES) return tooLarge();
    const text = await c.req.text();
    if (Buffer.byteLength(text) > MAX_BODY_BYTES) return tooLarge();
    if (opts.optional && text.trim() === '') {
      c.set('body', undefined);
      return next();
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      return problem(400, PROBLEM.malformedJson, 'Malformed JSON', {
        detail: error instanceof Error ? error.message : 'the body is not valid JSON',
        errors: [{ path: '(body)', message: 'not valid JSON' }],
      });
    }
    c.set('body', parsed);
    return next();
  };
}

function tooLarge(): Response {
  return problem(413, PROBLEM.payloadTooLarge, 'Request body too large', { detail: `the body exceeds ${MAX_BODY_BYTES} bytes` });
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
