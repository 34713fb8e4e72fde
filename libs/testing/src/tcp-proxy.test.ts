import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { TcpProxy } from './tcp-proxy.js';

function echoServer(): Promise<net.Server> {
  const server = net.createServer((s) => s.pipe(s));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function roundTrip(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write('ping'));
    s.once('data', (d) => {
      resolve(d.toString());
      s.destroy();
    });
    s.once('error', reject);
  });
}

describe('TcpProxy', () => {
  const servers: net.Server[] = [];
  afterAll(() => servers.forEach((s) => s.close()));

  it('forwards, refuses while cut, and forwards again after restore on the same port', async () => {
    const echo = await echoServer();
    servers.push(echo);
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: (echo.address() as net.AddressInfo).port });
    expect(await roundTrip(proxy.port)).toBe('ping');
    await proxy.cut();
    await expect(roundTrip(proxy.port)).rejects.toThrow(/ECONNREFUSED/);
    await proxy.restore();
    expect(await roundTrip(proxy.port)).toBe('ping');
    expect(proxy.url('redis://127.0.0.1:6379')).toBe(`redis://127.0.0.1:${proxy.port}`);
    await proxy.close();
  });

  it('stall: a connection stays open but nothing is forwarded; cut drops what was held', async () => {
    const received: string[] = [];
    const sink = net.createServer((s) => s.on('data', (d) => received.push(d.toString())));
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', () => resolve()));
    servers.push(sink);
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: (sink.address() as net.AddressInfo).port });
    const client = net.connect({ host: '127.0.0.1', port: proxy.port });
    await new Promise((resolve) => client.once('connect', resolve));
    client.write('before');
    await new Promise((r) => setTimeout(r, 100));
    expect(received.join('')).toBe('before');
    proxy.stall();
    client.write('during');
    await new Promise((r) => setTimeout(r, 200));
    expect(client.destroyed).toBe(false);
    expect(received.join('')).toBe('before');
    await proxy.cut();
    await new Promise((r) => setTimeout(r, 100));
    expect(received.join('')).toBe('before');
    client.destroy();
  });
});
