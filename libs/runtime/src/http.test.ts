import { connect } from 'node:net';
import { once } from 'node:events';
import { Hono } from 'hono';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { closeServer, listen } from './http.js';

/**
 * A keep-alive connection idle for longer than Node's default 5 s is still served: a client (or a
 * load balancer, whose idle timeout is typically 60 s) that reuses it must not find it closed under
 * its request ("socket closed by the other side", no status).
 */
let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

describe('listen', () => {
  it('keeps an idle keep-alive connection open past 5 s and serves the next request on it', async () => {
    const app = new Hono().get('/ping', (c) => c.text('pong'));
    const server = await listen(app, { host: '127.0.0.1', port: 0 }, pino({ level: 'silent' }));
    close = () => closeServer(server);
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const socket = connect(address.port, '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    let closed = false;
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    socket.on('close', () => (closed = true));
    const request = 'GET /ping HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n';
    socket.write(request);
    await expect.poll(() => received.includes('pong'), { timeout: 2_000 }).toBe(true);

    await new Promise((r) => setTimeout(r, 6_000));
    expect(closed).toBe(false);
    received = '';
    socket.write(request);
    await expect.poll(() => received.includes('pong'), { timeout: 2_000 }).toBe(true);
    socket.destroy();
  }, 15_000);
});
