import type { MiddlewareHandler } from 'hono';
import { readJsonBody } from '@janus/http';

/**
 * Reads the JSON body before any validation (415 / 413 / 400, see readJsonBody) and hands the
 * parsed value to the route's zod validator through hono's body cache, so it is parsed once.
 */
export function jsonBody(maxBytes: () => number): MiddlewareHandler {
  return async (c, next) => {
    const body = await readJsonBody(c, { cap: maxBytes() });
    if (!body.ok) return body.response;
    c.req.bodyCache.json = Promise.resolve(body.value);
    await next();
  };
}

/** Bytes of a JSON value as it travels in the job message. */
export function jsonBytes(value: unknown): number {
  return value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value), 'utf8');
}
