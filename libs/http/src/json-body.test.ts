import { describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { readJsonBody } from './json-body.js';

function app(opts: { cap: number; optional?: boolean }) {
  const a = new Hono();
  a.post('/', async (c) => {
    const body = await readJsonBody(c, opts);
    return body.ok ? c.json({ value: body.value ?? null }, 200) : body.response;
  });
  return a;
}
const post = (a: Hono, body: string | undefined, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  a.request('/', { method: 'POST', headers, ...(body !== undefined ? { body } : {}) });

describe('readJsonBody', () => {
  it('parses JSON and answers 415, 413 and 400 as problem+json', async () => {
    const a = app({ cap: 20 });
    expect(await (await post(a, '{"a":1}')).json()).toEqual({ value: { a: 1 } });
    const wrongType = await post(a, '{}', { 'content-type': 'text/plain' });
    expect(wrongType.status).toBe(415);
    expect(wrongType.headers.get('content-type')).toBe('application/problem+json');
    expect((await post(a, JSON.stringify({ a: 'x'.repeat(30) }))).status).toBe(413);
    const malformed = await post(a, '{nope');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ status: 400, errors: [{ path: '(body)', message: 'not valid JSON' }] });
  });

  it('a body with a Content-Encoding other than identity is 415 (gzip was read as malformed JSON, an unknown coding ignored)', async () => {
    const a = app({ cap: 100 });
    for (const coding of ['gzip', 'br', 'bogus']) {
      const res = await post(a, '{"a":1}', { 'content-type': 'application/json', 'content-encoding': coding });
      expect(res.status, coding).toBe(415);
      expect(res.headers.get('accept-encoding')).toBe('identity');
    }
    expect(await (await post(a, '{"a":1}', { 'content-type': 'application/json', 'content-encoding': 'identity' })).json()).toEqual({ value: { a: 1 } });
  });

  it('with optional, a missing or empty body is undefined, and a non-JSON body still 415', async () => {
    const a = app({ cap: 20, optional: true });
    expect(await (await post(a, undefined, {})).json()).toEqual({ value: null });
    expect(await (await post(a, '', { 'content-type': 'application/json' })).json()).toEqual({ value: null });
    expect((await post(a, 'x', { 'content-type': 'text/plain' })).status).toBe(415);
  });
});

describe('requestHeader', () => {
  it('reads headers from the Node request behind @hono/node-server and from the web request otherwise', async () => {
    const { serve } = await import('@hono/node-server');
    const { requestHeader } = await import('./header.js');
    const a = new Hono();
    a.get('/', (c) => c.json({ auth: requestHeader(c, 'authorization') ?? null, missing: requestHeader(c, 'x-missing') ?? null }));
    expect(await (await a.request('/', { headers: { Authorization: 'Bearer web' } })).json()).toEqual({ auth: 'Bearer web', missing: null });
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const s = serve({ fetch: a.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    try {
      const address = server.address() as { port: number };
      const res = await fetch(`http://127.0.0.1:${address.port}/`, { headers: { Authorization: 'Bearer node' } });
      expect(await res.json()).toEqual({ auth: 'Bearer node', missing: null });
    } finally {
      server.close();
    }
  });
});
