import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import type { Settings } from '@janus/config';

export type { NatsConnection } from '@nats-io/transport-node';

interface StatusLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * The nats.js TLS option for a server list. nats.js ignores the URL scheme (it upgrades to TLS only
 * when the server asks for it), so `tls://` alone would connect in plain text to a server that does
 * not offer TLS. `tls: {}` makes TLS required, verified against Node's trust store (plus
 * NODE_EXTRA_CA_CERTS). The option is per connection: one `tls://` URL requires TLS of every server.
 */
export function natsTlsOptions(servers: readonly string[]): Pick<NodeConnectionOptions, 'tls'> {
  return servers.some((s) => /^tls:\/\//i.test(s.trim())) ? { tls: {} } : {};
}

/** nats.js's `user`/`pass` for NATS_USER/NATS_PASSWORD (settings.natsAuth); nothing without them. */
export function natsAuthOptions(auth: Settings['natsAuth'] | undefined): Pick<NodeConnectionOptions, 'user' | 'pass'> {
  return auth === undefined ? {} : { user: auth.user, pass: auth.password };
}

/**
 * Connects with endless reconnects (a NATS restart must not need an app restart) and logs
 * status changes. `isNatsUp(nc)` is what readiness asks. With `natsAuth` (NATS_USER and
 * NATS_PASSWORD) it logs in as that user; a refused login rejects with "Authorization Violation"
 * (the password is never part of an error or a log line).
 */
export async function connectNats(
  settings: Pick<Settings, 'natsServers'> & Partial<Pick<Settings, 'natsAuth'>>,
  opts: { name: string; logger?: StatusLogger },
): Promise<NatsConnection> {
  const nc = await connect({
    servers: [...settings.natsServers],
    ...natsAuthOptions(settings.natsAuth),
    ...natsTlsOptions(settings.natsServers),
    name: opts.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 2_000,
    maxPingOut: 2,
    waitOnFirstConnect: false,
    // Every request (each JetStream publish is one) would otherwise build an Error up front just
    // to keep its stack for a possible failure: ~10% of ingress CPU in the benchmark. Failures
    // still carry their message and cause.
    noAsyncTraces: true,
  });
  const logger = opts.logger;
  if (logger) {
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect' || status.type === 'error') logger.warn({ status: status.type }, 'nats connection problem');
        else if (status.type === 'reconnect') logger.info({ status: status.type }, 'nats reconnected');
      }
    })();
  }
  return nc;
}

/** True while the client holds a live connection to a server. */
export function isNatsUp(nc: NatsConnection): boolean {
  if (nc.isClosed() || nc.isDraining()) return false;
  // `info` is undefined until the first connect; a reconnecting client keeps its last info, so ask
  // the protocol state through a cheap round trip instead.
  return nc.info !== undefined;
}

/** A round trip to the server, bounded in time: what readiness uses. */
export async function pingNats(nc: NatsConnection, timeoutMs = 800): Promise<boolean> {
  if (!isNatsUp(nc)) return false;
  try {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
    });
    try {
      await Promise.race([nc.flush(), timeout]);
    } finally {
      clearTimeout(timer);
    }
    return true;
  } catch {
    return false;
  }
}
