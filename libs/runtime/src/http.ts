import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import type { Logger } from '@janus/observability';

/** Listens on `<host>:<port>` (settings.host: 127.0.0.1 in development); resolves once the socket is bound. */
export function listen(app: Pick<Hono, 'fetch'>, address: { host: string; port: number }, logger: Logger): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port: address.port, hostname: address.host }, (info) => {
      logger.info({ host: info.address, port: info.port }, 'listening');
      resolve(server);
    });
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
