import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { Settings } from '@janus/config';

export type { Logger } from 'pino';

/**
 * Field names whose values are secrets, wherever they appear (top level or one object down):
 * replaced by `[redacted]` before a line is written. Defence in depth: no code logs these on purpose,
 * and the log scan of every test run (`tools/scripts/log-scan`) checks that none ever appears.
 */
export const REDACTED_FIELDS: readonly string[] = ['token', 'leaseToken', 'password', 'pass', 'apiKey', 'authorization', 'signingKey', 'adminToken'];

const REDACT_PATHS = REDACTED_FIELDS.flatMap((field) => [field, `*.${field}`]);

/**
 * Structured logs: JSON lines when piped (production, log shippers), pino-pretty in a terminal.
 * `JANUS_LOG_FORMAT=json|pretty` forces one or the other. `JANUS_LOG_FILE=<path>` also appends every
 * line, as JSON, to that file (created with its directory; one write per line, so several processes
 * may share it): what the test run's secret scan reads.
 */
export function createLogger(app: string, settings: Pick<Settings, 'logLevel' | 'namespace'>): Logger {
  const forced = process.env.JANUS_LOG_FORMAT;
  const pretty = forced === 'pretty' || (forced !== 'json' && process.stdout.isTTY === true);
  const file = process.env.JANUS_LOG_FILE;
  const options: LoggerOptions = {
    name: app,
    level: settings.logLevel,
    base: { app, ns: settings.namespace, pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  if (pretty) {
    const prettyTarget = { target: 'pino-pretty', level: 'trace', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,ns' } };
    const targets = file ? [prettyTarget, { target: 'pino/file', level: 'trace', options: { destination: file, mkdir: true, append: true } }] : [prettyTarget];
    return pino({ ...options, transport: { targets } });
  }
  if (!file) return pino(options);
  const streams: { level: 'trace'; stream: DestinationStream }[] = [
    { level: 'trace', stream: pino.destination(1) },
    // Synchronous: a line logged just before a kill -9 is still in the file.
    { level: 'trace', stream: pino.destination({ dest: file, mkdir: true, append: true, sync: true }) },
  ];
  return pino(options, pino.multistream(streams));
}
