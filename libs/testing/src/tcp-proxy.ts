import net from 'node:net';

/**
 * A TCP proxy in front of a real service, for outage tests that must not disturb the shared
 * service other test files use: `cut()` closes every connection and refuses new ones (what a
 * client sees when the server dies), `restore()` accepts again. `stall()` keeps every connection
 * open but forwards nothing more in either direction (a server that hangs: the client sees no
 * error, its requests just wait); a `cut()` after it drops whatever was held back.
 */
export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly pairs = new Set<readonly [net.Socket, net.Socket]>();
  private stalled = false;
  private portNumber = 0;

  private constructor(private readonly target: { host: string; port: number }) {}

  static async start(target: { host: string; port: number }, port = 0): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await proxy.listen(port);
    return proxy;
  }

  get port(): number {
    return this.portNumber;
  }

  /** `scheme://127.0.0.1:<port>` plus the original URL's path and credentials. */
  url(original: string): string {
    const u = new URL(original);
    u.hostname = '127.0.0.1';
    u.port = String(this.portNumber);
    return u.toString().replace(/\/$/, original.endsWith('/') ? '/' : '');
  }

  private listen(port: number): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      this.sockets.add(client).add(upstream);
      const pair = [client, upstream] as const;
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
        this.pairs.delete(pair);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      this.pairs.add(pair);
      if (this.stalled) {
        client.pause();
        upstream.pause();
      } else client.pipe(upstream).pipe(client);
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        this.portNumber = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  /** Forwards nothing more, either way, on every connection (new ones too) until `cut()`; nothing is closed. */
  stall(): void {
    this.stalled = true;
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  /** Ends a stall: everything it held back goes through now (late), and forwarding goes on. */
  resume(): void {
    if (!this.stalled) return;
    this.stalled = false;
    for (const [client, upstream] of this.pairs) {
      client.pipe(upstream).pipe(client);
      client.resume();
      upstream.resume();
    }
  }

  /** Closes every open connection, dropping anything a stall held back, and stops listening (the port is kept for `restore`). */
  async cut(): Promise<void> {
    this.stalled = false;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.pairs.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async restore(): Promise<void> {
    if (!this.server) await this.listen(this.portNumber);
  }

  async close(): Promise<void> {
    await this.cut();
  }
}
