import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Settings } from '@janus/config';

export type { NatsConnection } from '@nats-io/transport-node';

interface StatusLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * Connects with endless reconnects (a NATS restart must not need an app restart) and logs
 * status changes. `isNatsUp(nc)` is what readiness asks.
 */
export async function connectNats(
  settings: Pick<Settings, 'natsServers'>,
  opts: { name: string; logger?: StatusLogger },
): Promise<NatsConnection> {
  const nc = await connect({
    servers: [...settings.natsServers],
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
