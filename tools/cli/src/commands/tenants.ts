import { stringify as toYaml } from 'yaml';
import { AdminApi, seg } from '../admin.js';
import { parse } from '../args.js';
import { UsageError, isObject, type CliIo, type Output } from '../io.js';

/** `janus tenants …`: the policy's tenants (policy-admin `GET /v1/tenants[/{id}]`). */
export const TENANTS_USAGE = `usage: janus tenants <command> [--json]
  list                               the tenants of the live policy and their limits
  get <id>                           one tenant (exit 1: 404 when there is none)
env: JANUS_ADMIN_URL (default http://127.0.0.1:8081), JANUS_ADMIN_TOKEN (required)`;

export async function tenantsCommand(sub: string | undefined, argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  switch (sub) {
    case 'list': {
      parse(argv, {}, { names: [] });
      const { body } = await new AdminApi(io).expect([200], 'GET', '/v1/tenants');
      out.result(body, () => printSection(out, body, 'tenants', 'TENANT'));
      return;
    }
    case 'get': {
      const { positionals } = parse(argv, {}, { names: ['id'] });
      const { body } = await new AdminApi(io).expect([200], 'GET', `/v1/tenants/${seg(positionals[0] ?? '')}`);
      out.result(body, () => out.line(toYaml(body).trimEnd()));
      return;
    }
    default:
      throw new UsageError(sub === undefined ? 'tenants needs a command' : `unknown command "tenants ${sub}"`);
  }
}

/** `{ version, <section>: { <name>: object } }` as a table: each name and its settings on one line. */
export function printSection(out: Output, body: unknown, section: string, header: string): void {
  const b = isObject(body) ? body : {};
  const entries = Object.entries(isObject(b[section]) ? b[section] : {});
  out.table([header, 'SETTINGS'], entries.map(([name, value]) => [name, JSON.stringify(value)]), `no ${section}`);
  out.line(`(policy version ${String(b['version'])})`);
}
