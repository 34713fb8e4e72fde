import { pino, type Logger } from 'pino';
import type { Settings } from '@janus/config';

export type { Logger } from 'pino';

/**
 * Structured logs: JSON lines when piped (production, log shippers), pino-pretty in a terminal.
 * `JANUS_LOG_FORMAT=json|pretty` forces one or the other.
 */
export function createLogger(app: string, settings: Pick<Settings, 'logLevel' | 'namespace'>): Logger {
  const forced = process.env.JANUS_LOG_FORMAT;
  const pretty = forced === 'pretty' || (forced !== 'json' && process.stdout.isTTY === true);
  return pino({
    name: app,
    level: settings.logLevel,
    base: { app, ns: settings.namespace, pid: process.pid },
    ...(pretty
      ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,ns' } } }
      : {}),
  });
}
