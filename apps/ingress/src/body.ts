import type { MiddlewareHandler } from 'hono';
import { PROBLEM, problem } from './problem.js';

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json\s*(;.*)?$/i;

/**
 * Reads a JSON body before any validation, in the order the contract's statuses imply:
 * not JSON → 415, over the hard cap → 413 (checked from Content-Length and again while streaming,
 * so a lying or absent header cannot make us buffer more than the cap), unparsable → 400.
 * The parsed value is handed to the route's zod validator through hono's body cache, so the
 * body is parsed once.
 */
export function jsonBody(maxBytes: () => number): MiddlewareHandler {
  return async (c, next) => {
    const contentType = c.req.header('content-type');
    if (!contentType || !JSON_TYPE.test(contentType)) {
      return problem(415, PROBLEM.unsupportedMediaType, 'Unsupported media type', {
        detail: 'the body must be JSON (Content-Type: application/json)',
      });
    }
    const cap = maxBytes();
    const tooLarge = () =>
      problem(413, PROBLEM.payloadTooLarge, 'Request body too large', { detail: `the request body exceeds ${cap} bytes` });
    const declared = c.req.header('content-length');
    if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > cap) return tooLarge();

    const text = await readCapped(c.req.raw, cap);
    if (text === undefined) return tooLarge();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      return problem(400, PROBLEM.malformedJson, 'Malformed JSON', {
        detail: error instanceof Error ? error.message : 'the body is not valid JSON',
        errors: [{ path: '(body)', message: 'not valid JSON' }],
      });
    }
    c.req.bodyCache.json = Promise.resolve(parsed);
    await next();
  };
}

/** The body as UTF-8 text, or undefined when it has more than `cap` bytes. */
async function readCapped(req: Request, cap: number): Promise<string | undefined> {
  if (!req.body) return '';
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > cap) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** Bytes of a JSON value as it travels in the job message. */
export function jsonBytes(value: unknown): number {
  return value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value), 'utf8');
}
