import { describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { isUnstorableTextError, problemNotFoundFor, problemOnError } from './edge.js';

// The shapes PostgreSQL (node-postgres) gives, wrapped as drizzle wraps them (`cause`).
const pgError = (code: string, message: string) => Object.assign(new Error('Failed query: insert …'), { cause: Object.assign(new Error(message), { code }) });

describe('problemOnError', () => {
  it('answers text PostgreSQL cannot store (NUL, a lone surrogate) 400, any other fault 500', async () => {
    expect(isUnstorableTextError(pgError('22021', 'invalid byte sequence for encoding "UTF8": 0x00'))).toBe(true);
    expect(isUnstorableTextError(pgError('22P05', 'unsupported Unicode escape sequence'))).toBe(true);
    expect(isUnstorableTextError(pgError('22P02', 'invalid input syntax for type json'))).toBe(true);
    expect(isUnstorableTextError(pgError('22P02', 'invalid input syntax for type integer: "x"'))).toBe(false);
    expect(isUnstorableTextError(pgError('23505', 'duplicate key value'))).toBe(false);

    const app = new Hono();
    app.get('/nul', () => {
      throw pgError('22021', 'invalid byte sequence for encoding "UTF8": 0x00');
    });
    app.get('/bug', () => {
      throw new Error('bug');
    });
    app.onError(problemOnError());
    const nul = await app.request('/nul');
    expect(nul.status).toBe(400);
    expect(await nul.json()).toMatchObject({ type: 'https://janus.dev/problems/invalid-request', status: 400 });
    expect((await app.request('/bug')).status).toBe(500);
  });
});

describe('problemNotFoundFor', () => {
  it('answers a path served under other methods 405 with Allow, an unknown path 404; both problem+json', async () => {
    const app = new Hono();
    app.use('*', async (_c, next) => next());
    const tenants = new Hono();
    tenants.get('/:id', (c) => c.json({}));
    tenants.put('/:id', (c) => c.json({}));
    tenants.delete('/:id', (c) => c.body(null, 204));
    tenants.post('/:id/keys', (c) => c.json({}, 201));
    app.route('/v1/tenants', tenants);
    app.get('/v1/files/*', (c) => c.json({}));
    app.notFound(problemNotFoundFor(app));

    const patch = await app.request('/v1/tenants/acme', { method: 'PATCH' });
    expect(patch.status).toBe(405);
    expect(patch.headers.get('allow')).toBe('DELETE, GET, HEAD, PUT');
    expect(patch.headers.get('content-type')).toBe('application/problem+json');
    expect(await patch.json()).toMatchObject({ type: 'https://janus.dev/problems/method-not-allowed', status: 405, errors: [] });
    expect((await app.request('/v1/tenants/acme/keys', { method: 'GET' })).headers.get('allow')).toBe('POST');
    expect((await app.request('/v1/files/a/b', { method: 'POST' })).status).toBe(405);
    // served, or no route under any method
    expect((await app.request('/v1/tenants/acme')).status).toBe(200);
    expect((await app.request('/v1/tenants/acme/other', { method: 'PATCH' })).status).toBe(404);
    expect((await app.request('/v1/tenant/acme', { method: 'PATCH' })).status).toBe(404);
    expect((await app.request('/v1/tenants.x/acme', { method: 'GET' })).status).toBe(404);
  });
});
