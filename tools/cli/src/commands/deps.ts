import { stringify as toYaml } from 'yaml';
import { AdminApi, seg } from '../admin.js';
import { isoOption, parse } from '../args.js';
import { UsageError, isObject, type CliIo, type Output } from '../io.js';
import { printSection } from './tenants.js';

/** `janus deps …` and `janus types …`: dependencies' live state and pauses (CONTRACT §5 v1.1). */
export const DEPS_USAGE = `usage: janus deps <command> [--json]
  list                               the dependencies of the live policy and their limits
  state <name>                       live state: effective rate, cooldown, circuit, in flight, pause
  pause <name> [--until <ISO time>]  hold admission of its jobs (mode queue waits, mode now gets 429 paused)
                                     until resumed, or until the time given (e.g. 2030-01-01T12:00:00Z)
  resume <name>                      lift a pause; waiting jobs go at once
env: JANUS_ADMIN_URL (default http://127.0.0.1:8081), JANUS_ADMIN_TOKEN (required)`;

export const TYPES_USAGE = `usage: janus types <command> [--json]
  pause <name> [--until <ISO time>]  hold admission of the job type's jobs (as janus deps pause)
  resume <name>                      lift a pause
env: JANUS_ADMIN_URL (default http://127.0.0.1:8081), JANUS_ADMIN_TOKEN (required)`;

export async function depsCommand(sub: string | undefined, argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  switch (sub) {
    case 'list': {
      parse(argv, {}, { names: [] });
      const { body } = await new AdminApi(io).expect([200], 'GET', '/v1/dependencies');
      out.result(body, () => printSection(out, body, 'dependencies', 'DEPENDENCY'));
      return;
    }
    case 'state': {
      const { positionals } = parse(argv, {}, { names: ['name'] });
      const { body } = await new AdminApi(io).expect([200], 'GET', `/v1/dependencies/${seg(positionals[0] ?? '')}/state`);
      out.result(body, () => out.line(toYaml(body).trimEnd()));
      return;
    }
    case 'pause':
    case 'resume':
      return pauseCommand('dependencies', sub, argv, io, out);
    default:
      throw new UsageError(sub === undefined ? 'deps needs a command' : `unknown command "deps ${sub}"`);
  }
}

export async function typesCommand(sub: string | undefined, argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  if (sub === 'pause' || sub === 'resume') return pauseCommand('job-types', sub, argv, io, out);
  throw new UsageError(sub === undefined ? 'types needs a command' : `unknown command "types ${sub}"`);
}

/** `POST /v1/{dependencies|job-types}/{name}/pause` (`{ until? }`) or `/resume`: both answer `{ paused, until }`. */
async function pauseCommand(resource: 'dependencies' | 'job-types', sub: 'pause' | 'resume', argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  const { values, positionals } = parse(argv, { until: { type: 'string' } }, { names: ['name'] });
  if (sub === 'resume' && values.until !== undefined) throw new UsageError('resume takes no --until');
  const name = positionals[0] ?? '';
  const until = isoOption('until', values.until);
  const { body } = await new AdminApi(io).expect([200], 'POST', `/v1/${resource}/${seg(name)}/${sub}`, sub === 'pause' ? { body: until !== undefined ? { until } : {} } : {});
  const b = isObject(body) ? body : {};
  const what = resource === 'dependencies' ? 'dependency' : 'job type';
  // after a resume: "resumed" (not "is not paused", which read as "nothing to resume")
  const notPaused = sub === 'resume' ? `${what} ${name} resumed` : `${what} ${name} is not paused`;
  out.result(body, () => out.line(b['paused'] === true ? `${what} ${name} paused ${typeof b['until'] === 'string' ? `until ${b['until']}` : 'until resumed'}` : notPaused));
}
