import { Readable } from 'node:stream';
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

    // Under @hono/node-server the Node request is at hand: reading it directly is ~3× cheaper than
    // through the web-stream adapter behind c.req.raw.body (measured: 6.6k vs 2.3k req/s).
    const incoming = nodeRequestOf(c.env);
    const text = incoming ? await readCappedNode(incoming, cap) : await readCapped(c.req.raw, cap);
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

function nodeRequestOf(env: unknown): Readable | undefined {
  const incoming = (env as { incoming?: unknown } | undefined)?.incoming;
  return incoming instanceof Readable ? incoming : undefined;
}

/**
 * Same as readCapped, from the Node request. Past the cap it answers at once and lets the rest
 * drain unbuffered: destroying the stream would reset the connection before the 413 is sent.
 */
function readCappedNode(incoming: Readable, cap: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    incoming.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.byteLength;
      if (size > cap) {
        over = true;
        chunks.length = 0;
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    incoming.once('end', () => {
      if (!over) resolve(Buffer.concat(chunks, size).toString('utf8'));
    });
    incoming.once('error', reject);
  });
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
