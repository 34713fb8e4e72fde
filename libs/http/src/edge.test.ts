import { describe, expect, it } from 'vitest';
import { Hono } from 'hono';
import { isUnstorableTextError, problemOnError } from './edge.js';

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
