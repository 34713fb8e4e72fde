// The generator alone (it imports only the names): the CLI bundle stays free of the rest of @janus/messaging.
import { natsAuthConfig, natsAuthPermissions } from '@janus/messaging/nats-auth';
import { parse } from '../args.js';
import { UsageError, type CliIo, type Output } from '../io.js';

/** `janus nats-auth`: CONTRACT §4 "Who may do what" for any namespace; infra/nats-auth.conf is its output for `janus`. */
export const NATS_AUTH_USAGE = `usage: janus nats-auth [--namespace <ns>] [--json]
  prints the nats-server \`authorization { … }\` block for a namespace: user "janus" (the apps) and
  user "worker" (workers), passwords from nats-server's environment (JANUS_NATS_PASSWORD,
  JANUS_WORKER_NATS_PASSWORD). Include it from a nats-server configuration; infra/nats-auth.conf is
  its output for namespace janus. Example: janus nats-auth --namespace acme > nats-auth.conf
  --namespace  default JANUS_NAMESPACE, else janus
  --json       the users and their publish/subscribe permissions as JSON instead`;

export function natsAuthCommand(argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  const { values } = parse(argv, { namespace: { type: 'string', short: 'n' } }, { names: [] });
  const namespace = values.namespace ?? (io.env['JANUS_NAMESPACE'] || 'janus');
  let text: string;
  try {
    text = natsAuthConfig(namespace);
  } catch (error) {
    throw new UsageError(`--namespace: ${(error as Error).message}`);
  }
  // The file ends with a newline; each printed line gets one.
  out.result({ namespace, users: natsAuthPermissions(namespace) }, () => out.line(text.replace(/\n$/, '')));
  return Promise.resolve();
}
