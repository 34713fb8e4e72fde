import type { ConsumerInfo, StreamInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { parse } from '../args.js';
import { CliFailure, EXIT, type CliIo, type Output } from '../io.js';

/** `janus streams`: what `nats stream report` and `nats consumer report` show, for the namespace's streams. */
export const STREAMS_USAGE = `usage: janus streams [--json]
  the namespace's JetStream streams (messages, bytes, consumers) and each consumer's
  pending, ack pending and redelivered counts
env: NATS_URL (default nats://127.0.0.1:4222; a comma-separated list is fine), JANUS_NAMESPACE (default janus),
     NATS_USER and NATS_PASSWORD when NATS requires users (the apps' user, janus: a worker may not list streams)`;

export interface StreamReport {
  readonly name: string;
  readonly subjects: readonly string[];
  readonly messages: number;
  readonly bytes: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly consumerCount: number;
  readonly consumers: readonly ConsumerReport[];
}

export interface ConsumerReport {
  readonly name: string;
  /** Messages not yet delivered to it. */
  readonly pending: number;
  /** Delivered, not acknowledged yet. */
  readonly ackPending: number;
  readonly redelivered: number;
  /** Pull requests waiting for messages (idle workers). */
  readonly waiting: number;
}

export async function streamsCommand(argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  parse(argv, {}, { names: [] });
  const servers = (io.env['NATS_URL'] || 'nats://127.0.0.1:4222').split(',').map((s) => s.trim());
  const namespace = io.env['JANUS_NAMESPACE'] || 'janus';
  const auth = credentials(io.env);
  // Loaded here, not at start: every other command runs without the NATS client's startup cost.
  const [{ connect }, { jetstreamManager }] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]);
  let nc: NatsConnection;
  try {
    // One try, no reconnects: a CLI should say "unreachable" rather than wait for a server.
    // nats.js ignores the URL scheme: `tls: {}` is what makes a tls:// URL require TLS (verified).
    const tls = servers.some((s) => /^tls:\/\//i.test(s)) ? { tls: {} } : {};
    nc = await connect({ servers, ...tls, ...auth, name: 'janus-cli', timeout: 5_000, reconnect: false });
  } catch (error) {
    const message = (error as Error).message;
    if (/authorization/i.test(message)) {
      throw new CliFailure(EXIT.unavailable, `NATS at ${servers.join(',')} refused the login: ${message} (${auth.user === undefined ? 'it requires users: set NATS_USER and NATS_PASSWORD' : 'check NATS_USER and NATS_PASSWORD'})`);
    }
    throw new CliFailure(EXIT.unavailable, `cannot reach NATS at ${servers.join(',')} (NATS_URL): ${message}`);
  }
  const streams: StreamReport[] = [];
  try {
    const jsm = await jetstreamManager(nc);
    // The server filters: streams with a subject under `<namespace>.` (every Janus stream of that
    // namespace, CONTRACT §4), and no other namespace's (`janus_2.…` is not under `janus.`).
    for await (const s of jsm.streams.list(`${namespace}.>`)) {
      const consumers: ConsumerReport[] = [];
      for await (const c of jsm.consumers.list(s.config.name)) consumers.push(consumerReport(c));
      streams.push(streamReport(s, consumers));
    }
  } catch (error) {
    throw new CliFailure(EXIT.unavailable, `JetStream at ${servers.join(',')} (NATS_URL): ${(error as Error).message}`);
  } finally {
    await nc.close();
  }
  streams.sort((a, b) => a.name.localeCompare(b.name));
  out.result({ namespace, streams }, () => {
    if (streams.length === 0) {
      out.line(`no streams for namespace "${namespace}" (JANUS_NAMESPACE)`);
      return;
    }
    out.table(
      ['STREAM', 'SUBJECTS', 'MESSAGES', 'BYTES', 'CONSUMERS'],
      streams.map((s) => [s.name, s.subjects.join(','), String(s.messages), bytes(s.bytes), String(s.consumerCount)]),
    );
    for (const s of streams) {
      if (s.consumers.length === 0) continue;
      out.line();
      out.line(`${s.name}:`);
      out.table(
        ['CONSUMER', 'PENDING', 'ACK PENDING', 'REDELIVERED', 'WAITING'],
        s.consumers.map((c) => [c.name, String(c.pending), String(c.ackPending), String(c.redelivered), String(c.waiting)]),
        '',
        '  ',
      );
    }
  });
}

/** NATS_USER and NATS_PASSWORD (both or neither; the apps' user, `janus`, may list streams, a worker may not). */
function credentials(env: CliIo['env']): { user?: string; pass?: string } {
  const user = env['NATS_USER'] || undefined;
  const pass = env['NATS_PASSWORD'] || undefined;
  if ((user === undefined) !== (pass === undefined)) {
    throw new CliFailure(EXIT.unavailable, `${user === undefined ? 'NATS_USER' : 'NATS_PASSWORD'} is not set (NATS_USER and NATS_PASSWORD go together)`);
  }
  return user !== undefined && pass !== undefined ? { user, pass } : {};
}

function streamReport(s: StreamInfo, consumers: ConsumerReport[]): StreamReport {
  return {
    name: s.config.name,
    subjects: s.config.subjects ?? [],
    messages: s.state.messages,
    bytes: s.state.bytes,
    firstSeq: s.state.first_seq,
    lastSeq: s.state.last_seq,
    consumerCount: s.state.consumer_count,
    consumers: consumers.sort((a, b) => a.name.localeCompare(b.name)),
  };
}

function consumerReport(c: ConsumerInfo): ConsumerReport {
  return { name: c.name, pending: c.num_pending, ackPending: c.num_ack_pending, redelivered: c.num_redelivered, waiting: c.num_waiting };
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i] ?? ''}`;
}
