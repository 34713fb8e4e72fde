import { ADMIN_TOKENS_USAGE, adminTokensCommand } from './commands/admin-tokens.js';
import { CREDITS_USAGE, creditsCommand } from './commands/credits.js';
import { DEAD_USAGE, JOBS_USAGE, deadCommand, jobsCommand } from './commands/jobs.js';
import { DEPS_USAGE, TYPES_USAGE, depsCommand, typesCommand } from './commands/deps.js';
import { KEYS_USAGE, keysCommand } from './commands/keys.js';
import { NATS_AUTH_USAGE, natsAuthCommand } from './commands/nats-auth.js';
import { POLICY_USAGE, policyCommand } from './commands/policy.js';
import { STREAMS_USAGE, streamsCommand } from './commands/streams.js';
import { TENANTS_USAGE, tenantsCommand } from './commands/tenants.js';
import { CliFailure, EXIT, Output, UsageError, type CliIo } from './io.js';

export const EXIT_CODES = `exit codes:
  0  done
  1  refused or failed: Janus answered with a 4xx decision (404 not found, 409 not cancellable or
     not replayable, 412 the policy moved on, 422 invalid, 429 rejected, …)
  2  usage: bad arguments (nothing was sent)
  3  configuration or infrastructure: JANUS_API_KEY / JANUS_ADMIN_TOKEN not set, Janus, policy-admin
     or NATS unreachable, a 5xx (503: nothing was done, try again), 401/403 (wrong key or token, or 429 after 20 of them)
problem details (detail and each field error) go to stderr; with --json, stdout carries the JSON
Janus answered, for failures too when there was one.`;

export const USAGE = `usage: janus <group> <command> [arguments] [--json] [--help]
  jobs     submit | get | list | cancel | replay     a tenant's jobs (producer API)
  dead     list | replay                              a tenant's dead jobs
  policy   get | diff | apply                         the live policy as a file
  tenants  list | get                                 the policy's tenants
  keys     create | list | revoke                     a tenant's API keys
  credits  get | topup | reconcile                    a tenant's prepaid credits
  admin-tokens list | create | revoke                 named admin tokens (besides JANUS_ADMIN_TOKEN)
  deps     list | state | pause | resume              dependencies: live state and pauses
  types    pause | resume                             job types: pauses
  streams                                             the namespace's JetStream streams and consumers
  nats-auth                                           the nats-server users and permissions for a namespace
--json: machine-readable output on stdout; janus <group> --help: the group's commands.
env: JANUS_URL (http://127.0.0.1:8080), JANUS_API_KEY          for jobs, dead
     JANUS_ADMIN_URL (http://127.0.0.1:8081), JANUS_ADMIN_TOKEN  for policy, tenants, keys, credits, admin-tokens, deps, types
     NATS_URL (nats://127.0.0.1:4222), JANUS_NAMESPACE (janus)  for streams (and NATS_USER, NATS_PASSWORD
       when NATS requires users: the apps' user, janus)
${EXIT_CODES}`;

type Group = (sub: string | undefined, argv: readonly string[], io: CliIo, out: Output) => Promise<void>;

const GROUPS: Readonly<Record<string, { usage: string; run: Group }>> = {
  jobs: { usage: JOBS_USAGE, run: jobsCommand },
  dead: { usage: DEAD_USAGE, run: deadCommand },
  policy: { usage: POLICY_USAGE, run: policyCommand },
  tenants: { usage: TENANTS_USAGE, run: tenantsCommand },
  keys: { usage: KEYS_USAGE, run: keysCommand },
  credits: { usage: CREDITS_USAGE, run: creditsCommand },
  'admin-tokens': { usage: ADMIN_TOKENS_USAGE, run: adminTokensCommand },
  deps: { usage: DEPS_USAGE, run: depsCommand },
  types: { usage: TYPES_USAGE, run: typesCommand },
  // no subcommands: the group is the command
  streams: { usage: STREAMS_USAGE, run: (sub, argv, io, out) => streamsCommand(sub === undefined ? argv : [sub, ...argv], io, out) },
  'nats-auth': { usage: NATS_AUTH_USAGE, run: (sub, argv, io, out) => natsAuthCommand(sub === undefined ? argv : [sub, ...argv], io, out) },
};

/**
 * `janus <group> <command> …`: runs one command and returns its exit code (EXIT). Never throws for
 * a refusal or a fault: those are printed (stderr, and the answer on stdout under --json).
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  // Looked at before the command parses its arguments: --help answers even when the rest is
  // incomplete, and a failure is printed as JSON or not whatever went wrong. Not after `--`.
  const end = argv.indexOf('--');
  const flags = end === -1 ? argv : argv.slice(0, end);
  const help = flags.includes('--help') || flags.includes('-h');
  const out = new Output(io, flags.includes('--json'));
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.err : io.out)(USAGE);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const group = Object.hasOwn(GROUPS, name) ? GROUPS[name] : undefined;
  if (group === undefined) {
    io.err(`unknown command "${name}"`);
    io.err(USAGE);
    return EXIT.usage;
  }
  if (help) {
    io.out(`${group.usage}\n\n${EXIT_CODES}`);
    return EXIT.ok;
  }
  // The command is the word after the group; `streams` and `nats-auth` have none, so its first word may be an option.
  const sub = rest[0]?.startsWith('-') === true ? undefined : rest[0];
  try {
    await group.run(sub, sub === undefined ? rest : rest.slice(1), io, out);
    return EXIT.ok;
  } catch (error) {
    if (!(error instanceof CliFailure)) throw error;
    io.err(error.message);
    for (const line of error.details) io.err(line);
    if (error instanceof UsageError) io.err(`usage: janus ${name} --help`);
    else if (out.json && error.body !== undefined) io.out(JSON.stringify(error.body, null, 2));
    return error.code;
  }
}
