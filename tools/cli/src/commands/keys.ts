import { AdminApi, seg } from '../admin.js';
import { parse } from '../args.js';
import { UsageError, isObject, type CliIo, type Output } from '../io.js';

/** `janus keys …`: a tenant's API keys (policy-admin `/v1/tenants/{id}/keys`). */
export const KEYS_USAGE = `usage: janus keys <command> [--json]
  create <tenant> [--label <label>]  a new API key; the key is shown only here (only its hash is stored)
  list <tenant>                      the tenant's keys (ids, labels, when created and revoked; never the keys)
  revoke <tenant> <keyId>            revoke a key: every ingress refuses it within a second
env: JANUS_ADMIN_URL (default http://127.0.0.1:8081), JANUS_ADMIN_TOKEN (required)`;

export async function keysCommand(sub: string | undefined, argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  switch (sub) {
    case 'create': {
      const { values, positionals } = parse(argv, { label: { type: 'string' } }, { names: ['tenant'] });
      const tenant = positionals[0] ?? '';
      const { body } = await new AdminApi(io).expect([201], 'POST', `/v1/tenants/${seg(tenant)}/keys`, { body: values.label !== undefined ? { label: values.label } : {} });
      const b = isObject(body) ? body : {};
      out.result(body, () => {
        out.fields([
          ['tenant', tenant],
          ['key id', String(b['keyId'])],
          ['key', String(b['key'])],
        ]);
        out.note('the key is shown only once: store it now (e.g. export JANUS_API_KEY=…)');
      });
      return;
    }
    case 'list': {
      const { positionals } = parse(argv, {}, { names: ['tenant'] });
      const { body } = await new AdminApi(io).expect([200], 'GET', `/v1/tenants/${seg(positionals[0] ?? '')}/keys`);
      const keys = isObject(body) && Array.isArray(body['keys']) ? body['keys'].filter(isObject) : [];
      out.result(body, () =>
        out.table(
          ['KEY ID', 'LABEL', 'CREATED', 'REVOKED'],
          keys.map((k) => [String(k['keyId']), typeof k['label'] === 'string' ? k['label'] : '-', String(k['createdAt']), typeof k['revokedAt'] === 'string' ? k['revokedAt'] : '-']),
          'no keys',
        ),
      );
      return;
    }
    case 'revoke': {
      const { positionals } = parse(argv, {}, { names: ['tenant', 'keyId'] });
      const [tenant = '', keyId = ''] = positionals;
      await new AdminApi(io).expect([204], 'DELETE', `/v1/tenants/${seg(tenant)}/keys/${seg(keyId)}`);
      out.result({ tenant, keyId, revoked: true }, () => out.line(`revoked key ${keyId} of tenant ${tenant}`));
      return;
    }
    default:
      throw new UsageError(sub === undefined ? 'keys needs a command' : `unknown command "keys ${sub}"`);
  }
}
