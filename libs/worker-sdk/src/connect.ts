import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { WORKER_INBOX_PREFIX, natsTlsOptions } from '@janus/messaging';

export { WORKER_INBOX_PREFIX } from '@janus/messaging';

export interface ConnectWorkerOptions {
  /** Server URLs; default `NATS_URL` (a comma-separated list is fine), else `nats://127.0.0.1:4222`. */
  servers?: string | readonly string[];
  /** The NATS user; default `NATS_USER`. Give a user and a password, or neither. */
  user?: string;
  /** Its password; default `NATS_PASSWORD`. */
  password?: string;
  /** The connection's name, as the server shows it (default `janus-worker`). */
  name?: string;
  /** Where `NATS_URL`, `NATS_USER` and `NATS_PASSWORD` are read (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Any other nats.js option (reconnect tuning, TLS files, …). `servers`, the credentials and the inbox prefix above win. */
  connectOptions?: Partial<NodeConnectionOptions>;
}

/** A worker's configuration is wrong (a user without a password, a URL that is not one): names the variable or option. */
export class WorkerConfigError extends Error {
  override readonly name = 'WorkerConfigError';
}

const nonEmpty = (value: string | undefined): string | undefined => (value === undefined || value === '' ? undefined : value);

/**
 * Connects a worker to NATS as CONTRACT §4's `worker` user: servers, user and password from the
 * options or else from `NATS_URL`, `NATS_USER` and `NATS_PASSWORD`, and the inbox prefix
 * `_INBOX_WORKER` (`WORKER_INBOX_PREFIX`), the only inboxes `infra/nats-auth.conf` lets a worker
 * read. Reconnects without end, like the apps: a NATS restart needs no worker restart. Without a
 * user it connects without credentials (a NATS without users). The result is what `startWorker`
 * takes as `nc`.
 */
export async function connectWorker(opts: ConnectWorkerOptions = {}): Promise<NatsConnection> {
  const env = opts.env ?? process.env;
  const servers = serverList(opts.servers ?? nonEmpty(env['NATS_URL']) ?? 'nats://127.0.0.1:4222', opts.servers === undefined ? 'NATS_URL' : 'servers');
  const user = opts.user ?? nonEmpty(env['NATS_USER']);
  const password = opts.password ?? nonEmpty(env['NATS_PASSWORD']);
  // Both or neither, as for the apps; the message never carries the password.
  if (user === undefined && password !== undefined) {
    throw new WorkerConfigError(`NATS_USER (or the user option) is required when ${opts.password !== undefined ? 'the password option' : 'NATS_PASSWORD'} is set`);
  }
  if (password === undefined && user !== undefined) {
    throw new WorkerConfigError(`NATS_PASSWORD (or the password option) is required when ${opts.user !== undefined ? 'the user option' : 'NATS_USER'} is set`);
  }
  return connect({
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    name: opts.name ?? 'janus-worker',
    ...natsTlsOptions(servers),
    ...opts.connectOptions,
    servers,
    ...(user !== undefined && password !== undefined ? { user, pass: password } : {}),
    inboxPrefix: WORKER_INBOX_PREFIX,
  });
}

function serverList(value: string | readonly string[], source: string): string[] {
  const list = (typeof value === 'string' ? value.split(',') : [...value]).map((s) => s.trim()).filter((s) => s.length > 0);
  if (list.length === 0) throw new WorkerConfigError(`${source} needs at least one server URL`);
  for (const s of list) {
    let protocol: string | undefined;
    try {
      protocol = new URL(s).protocol;
    } catch {
      protocol = undefined;
    }
    if (protocol === undefined || !['nats:', 'tls:', 'ws:', 'wss:'].includes(protocol)) {
      // Credentials in a URL (nats://user:pass@host) are not echoed.
      const shown = s.replace(/\/\/[^/@]*@/, '//…@');
      throw new WorkerConfigError(`${source}: "${shown}" must be a URL with scheme nats://, tls://, ws:// or wss://`);
    }
  }
  return list;
}
