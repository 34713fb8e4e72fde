import { AdminApi, seg } from '../admin.js';
import { parse } from '../args.js';
import { UsageError, isObject, type CliIo, type Output } from '../io.js';

/** `janus admin-tokens …`: named admin tokens (policy-admin `/v1/admin/tokens`). */
export const ADMIN_TOKENS_USAGE = `usage: janus admin-tokens <command> [--json]
  list [--revoked]                   the admin tokens: env (JANUS_ADMIN_TOKEN) and the named ones, with
                                     who made them and when last used (never a token); --revoked: also revoked ones
  create <name>                      a new named admin token; it is shown only here (only its hash is stored).
                                     name: ^[a-z0-9][a-z0-9_.-]{0,62}$; the audit log names it token:<name>
  revoke <name>                      revoke a named token: every policy-admin refuses it within a second
                                     (env cannot be revoked: change JANUS_ADMIN_TOKEN and restart)
env: JANUS_ADMIN_URL (default http://127.0.0.1:8081), JANUS_ADMIN_TOKEN (required: env or a named token)`;

const text = (v: unknown) => (typeof v === 'string' ? v : '-');

export async function adminTokensCommand(sub: string | undefined, argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  switch (sub) {
    case 'list': {
      const { values } = parse(argv, { revoked: { type: 'boolean' } }, { names: [] });
      const { body } = await new AdminApi(io).expect([200], 'GET', `/v1/admin/tokens${values.revoked === true ? '?revoked=true' : ''}`);
      const tokens = isObject(body) && Array.isArray(body['tokens']) ? body['tokens'].filter(isObject) : [];
      const withRevoked = values.revoked === true;
      out.result(body, () =>
        out.table(
          ['NAME', 'SOURCE', 'CREATED', 'CREATED BY', 'LAST USED', ...(withRevoked ? ['REVOKED'] : [])],
          tokens.map((t) => [text(t['name']), text(t['source']), text(t['createdAt']), text(t['createdBy']), text(t['lastUsedAt']), ...(withRevoked ? [text(t['revokedAt'])] : [])]),
          'no admin tokens',
        ),
      );
      return;
    }
    case 'create': {
      const { positionals } = parse(argv, {}, { names: ['name'] });
      const name = positionals[0] ?? '';
      const { body } = await new AdminApi(io).expect([201], 'POST', '/v1/admin/tokens', { body: { name } });
      const b = isObject(body) ? body : {};
      out.result(body, () => {
        out.fields([
          ['name', String(b['name'])],
          ['token', String(b['token'])],
        ]);
        out.note('the token is shown only once: store it now (e.g. export JANUS_ADMIN_TOKEN=…)');
      });
      return;
    }
    case 'revoke': {
      const { positionals } = parse(argv, {}, { names: ['name'] });
      const name = positionals[0] ?? '';
      await new AdminApi(io).expect([204], 'DELETE', `/v1/admin/tokens/${seg(name)}`);
      out.result({ name, revoked: true }, () => out.line(`revoked admin token ${name}`));
      return;
    }
    default:
      throw new UsageError(sub === undefined ? 'admin-tokens needs a command' : `unknown command "admin-tokens ${sub}"`);
  }
}
