import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serve, type ServerType } from '@hono/node-server';
import { loadSettings } from '@janus/config';
import { testEnv, testNamespace } from '@janus/testing';
import type { Ingress } from '../src/ingress.js';
import { cleanup, createKey, setPolicy, start } from './helpers.js';

// The same app behind a real Node HTTP server: bodies are read from the Node request there (not
// through the web-stream adapter that app.request() uses), so the body rules are checked again.
const ns = testNamespace('ingress_node');
const settings = loadSettings(testEnv(ns));
let ingress: Ingress;
let server: ServerType;
let port = 0;
let key = '';

function post(body: string | Buffer[], headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/jobs', headers: { authorization: `Bearer ${key}`, ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    if (typeof body === 'string') req.end(body);
    else {
      // Chunked, no Content-Length: the cap must hold while streaming.
      for (const chunk of body) req.write(chunk);
      req.end();
    }
  });
}

beforeAll(async () => {
  ingress = await start(ns);
  await setPolicy([ingress], { tenants: { acme: {} }, jobTypes: { email: { maxPayloadBytes: 1024 } } });
  key = (await createKey([ingress], 'acme')).key;
  server = serve({ fetch: ingress.app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise((r) => server.once('listening', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await ingress.close();
  await cleanup(settings, ns);
});

describe('bodies read from a real Node server', () => {
  it('admits a valid job, and answers 400 / 413 / 415 like app.request does', async () => {
    const ok = await post(JSON.stringify({ type: 'email', payload: { to: 'a' } }), { 'content-type': 'application/json' });
    expect(ok.status).toBe(202);
    expect(JSON.parse(ok.body)).toMatchObject({ status: 'admitted', attempt: 1 });

    expect((await post('{not json', { 'content-type': 'application/json' })).status).toBe(400);
    expect((await post('{}', { 'content-type': 'text/plain' })).status).toBe(415);

    const oversized = await post(Array.from({ length: 64 }, () => Buffer.alloc(64 * 1024, 0x20)), { 'content-type': 'application/json' });
    expect(oversized.status).toBe(413);
    expect(JSON.parse(oversized.body)).toMatchObject({ status: 413 });
  });
});
