import { natsNames } from './names.js';

/**
 * CONTRACT §4 "Who may do what": the nats-server `authorization { … }` block for one namespace,
 * with the user the apps connect as and the user workers connect as. `infra/nats-auth.conf` is
 * `natsAuthConfig('janus')`; `janus nats-auth --namespace <ns>` prints it for any other.
 *
 * This module imports nothing but the names, so that the CLI bundle stays free of zod and friends.
 */

/** The user every app connects as (`NATS_USER` of the apps). */
export const NATS_APP_USER = 'janus';
/** The user workers connect as. */
export const NATS_WORKER_USER = 'worker';
/** The environment variables of nats-server that hold the two passwords (nats-server reads `$NAME` from its environment). */
export const NATS_PASSWORD_VARIABLES = { app: 'JANUS_NATS_PASSWORD', worker: 'JANUS_WORKER_NATS_PASSWORD' } as const;
/**
 * Where workers receive replies (pulled jobs, publish acks, lease extension answers): not under
 * `_INBOX.`, where the apps receive theirs (the persister's pulled messages, JetStream API answers),
 * so that a worker may subscribe to its own inboxes and never to the apps'. nats.js:
 * `connect({ inboxPrefix: WORKER_INBOX_PREFIX })` (the worker SDK's `connectWorker` sets it).
 */
export const WORKER_INBOX_PREFIX = '_INBOX_WORKER';

/** The same pattern as `@janus/config`'s NAMESPACE_PATTERN (repeated here so this module imports nothing; a test keeps them equal). */
const NAMESPACE = /^[a-z][a-z0-9_]{0,39}$/;

export interface SubjectPermissions {
  readonly allow: readonly string[];
  readonly deny?: readonly string[];
}

export interface UserPermissions {
  readonly user: string;
  readonly passwordVariable: string;
  readonly publish: SubjectPermissions;
  readonly subscribe: SubjectPermissions;
}

/** The two users and what each may publish and subscribe to, for `namespace`. */
export function natsAuthPermissions(namespace: string): { readonly app: UserPermissions; readonly worker: UserPermissions } {
  if (!NAMESPACE.test(namespace)) throw new Error(`namespace "${namespace}" must match ^[a-z][a-z0-9_]{0,39}$`);
  const names = natsNames(namespace);
  const jobs = names.streams.jobs;
  // NATS wildcards match whole tokens only: `workers-*` would be a consumer literally named so. The
  // worker may therefore use any consumer of the jobs stream except those Janus keeps there for
  // itself (a deny wins over an allow); Janus creates no other consumer on that stream.
  const own = [names.consumers.persisterJobs];
  return {
    app: {
      user: NATS_APP_USER,
      passwordVariable: NATS_PASSWORD_VARIABLES.app,
      publish: {
        allow: [`${namespace}.>`, '$JS.API.>', '$JS.ACK.>', '$JS.FC.>', '_INBOX.>', `${WORKER_INBOX_PREFIX}.>`],
      },
      subscribe: { allow: [`${namespace}.>`, '_INBOX.>'] },
    },
    worker: {
      user: NATS_WORKER_USER,
      passwordVariable: NATS_PASSWORD_VARIABLES.worker,
      publish: {
        allow: [
          `$JS.API.CONSUMER.MSG.NEXT.${jobs}.*`,
          `$JS.API.CONSUMER.INFO.${jobs}.*`,
          `$JS.ACK.${jobs}.*.>`,
          names.subjects.allOutcomes,
          names.subjects.leaseExtend,
        ],
        deny: own.flatMap((c) => [`$JS.API.CONSUMER.MSG.NEXT.${jobs}.${c}`, `$JS.API.CONSUMER.INFO.${jobs}.${c}`, `$JS.ACK.${jobs}.${c}.>`]),
      },
      subscribe: { allow: [`${WORKER_INBOX_PREFIX}.>`] },
    },
  };
}

type ListKind = `${'app' | 'worker'}.${'publish' | 'subscribe' | 'deny'}`;

/** A short note after each subject of the generated file. */
function note(kind: ListKind, subject: string, namespace: string): string | undefined {
  switch (kind) {
    case 'app.publish':
      if (subject === `${namespace}.>`) return 'every subject of the namespace';
      return {
        '$JS.API.>': 'the JetStream API: streams, consumers, pulls, direct gets',
        '$JS.ACK.>': 'acknowledgements',
        '$JS.FC.>': 'flow control',
        '_INBOX.>': "replies to the apps' own requests",
        [`${WORKER_INBOX_PREFIX}.>`]: "answers to workers' lease extension requests",
      }[subject];
    case 'app.subscribe':
      return subject === '_INBOX.>' ? 'replies, pulled messages, publish acks' : 'config changes, waiting-room wake-ups, lease extension requests';
    case 'worker.publish':
      if (subject.startsWith('$JS.API.CONSUMER.MSG.NEXT.')) return 'pull jobs';
      if (subject.startsWith('$JS.API.CONSUMER.INFO.')) return 'consumer info (the SDK checks that its consumer exists)';
      if (subject.startsWith('$JS.ACK.')) return 'acknowledge them';
      if (subject === `${namespace}.outcomes.>`) return 'report outcomes (JetStream publish)';
      if (subject === `${namespace}.leases.extend`) return 'claim and extend leases (request/reply to the scheduler)';
      return undefined;
    case 'worker.deny':
      return "Janus's own consumer, not a worker's";
    case 'worker.subscribe':
      return "every worker's replies: pulled jobs, publish acks, lease answers";
    default:
      return undefined;
  }
}

/** The `authorization { … }` block for `namespace`, as nats-server configuration text. */
export function natsAuthConfig(namespace: string): string {
  const { app, worker } = natsAuthPermissions(namespace);
  const jobs = natsNames(namespace).streams.jobs;
  const list = (kind: ListKind, subjects: readonly string[], indent: string) => {
    const width = Math.max(...subjects.map((s) => JSON.stringify(s).length + 1));
    return subjects.map((s, i) => {
      const item = `${JSON.stringify(s)}${i < subjects.length - 1 ? ',' : ''}`;
      const text = note(kind, s, namespace);
      return `${indent}${text === undefined ? item : `${item.padEnd(width)}  # ${text}`}`;
    });
  };
  const permissions = (who: 'app' | 'worker', action: 'publish' | 'subscribe', p: SubjectPermissions, indent: string) => [
    `${indent}allow: [`,
    ...list(`${who}.${action}`, p.allow, `${indent}  `),
    `${indent}]`,
    ...(p.deny !== undefined && p.deny.length > 0 ? [`${indent}deny: [`, ...list(`${who}.deny`, p.deny, `${indent}  `), `${indent}]`] : []),
  ];
  const user = (who: 'app' | 'worker', u: UserPermissions, what: string) => [
    '    {',
    `      # ${what}`,
    `      user: ${JSON.stringify(u.user)}`,
    `      password: $${u.passwordVariable}`,
    '      permissions: {',
    '        publish: {',
    ...permissions(who, 'publish', u.publish, '          '),
    '        }',
    '        subscribe: {',
    ...permissions(who, 'subscribe', u.subscribe, '          '),
    '        }',
    '      }',
    '    }',
  ];
  return [
    `# NATS users for Janus namespace "${namespace}" (CONTRACT §4, "Who may do what").`,
    `# Generated by \`janus nats-auth --namespace ${namespace}\`: regenerate rather than edit.`,
    '# Include it from a nats-server (2.9 or later) configuration:   include ./nats-auth.conf',
    `# The passwords come from nats-server's environment: ${app.passwordVariable} (user "${app.user}",`,
    `# the apps) and ${worker.passwordVariable} (user "${worker.user}", workers); nats-server does not start`,
    '# without them. Apps connect with NATS_USER/NATS_PASSWORD; workers also with the inbox prefix',
    `# ${WORKER_INBOX_PREFIX} (the worker SDK's connectWorker sets it), the only inboxes they may read —`,
    "# all workers' alike: one worker connection can read what is delivered to another, so treat the",
    '# workers as one trust domain, or give each group its own user (docs/operations.md, NATS users).',
    '#',
    '# NATS wildcards match whole tokens only ("workers-*" would be a literal consumer name), so a',
    `# worker may pull from, ask about and acknowledge the consumers of ${jobs} except the ones Janus`,
    '# keeps there for itself, which are denied (a deny wins over an allow). It may not publish jobs,',
    '# dead letters, ledger entries or config events, nor create, change or delete streams and consumers.',
    'authorization {',
    '  users = [',
    ...user('app', app, 'the apps: ingress, policy-admin, persister, retry-scheduler (and `janus streams`)'),
    ...user('worker', worker, 'workers: pull their jobs, acknowledge, report outcomes, extend leases'),
    '  ]',
    '}',
    '',
  ].join('\n');
}
