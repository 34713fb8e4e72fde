import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import type { Logger } from '@janus/observability';

/**
 * How long an idle keep-alive connection stays open (ms). Node's default, 5 s, is shorter than what
 * clients and load balancers keep an idle connection for (60 s is common): one that reuses a
 * connection just as the server closes it sees its request fail without a status. Longer than
 * those, the server is never the side that closes an idle connection first. Headers must be
 * allowed a little longer than that (Node's rule).
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** Listens on `<host>:<port>` (settings.host: 127.0.0.1 in development); resolves once the socket is bound. */
export function listen(app: Pick<Hono, 'fetch'>, address: { host: string; port: number }, logger: Logger): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port: address.port, hostname: address.host }, (info) => {
      logger.info({ host: info.address, port: info.port }, 'listening');
      resolve(server);
    });
    if ('keepAliveTimeout' in server) {
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
      server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;
    }
    server.once('error', reject);
  });
}

export function closeServer(server: ServerType): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive sockets would hold close() open; ask them to end.
    if ('closeIdleConnections' in server) server.closeIdleConnections();
  });
}
