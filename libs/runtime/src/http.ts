import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import type { Logger } from '@janus/observability';

/** Listens on 0.0.0.0:<port>; resolves once the socket is bound. */
export function listen(app: Hono, port: number, logger: Logger): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port, hostname: '0.0.0.0' }, (info) => {
      logger.info({ port: info.port }, 'listening');
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
