import { randomUUID } from 'node:crypto';
import { AdminApi, seg } from '../admin.js';
import { parse } from '../args.js';
import { CliFailure, EXIT, UsageError, isObject, type CliIo, type Output } from '../io.js';

/** `janus credits …`: a tenant's prepaid credits (policy-admin `/v1/tenants/{id}/credits`, docs/credits.md). */
export const CREDITS_USAGE = `usage: janus credits <command> [--json]
  get <tenant>                                 balance and reserved (no account: credits do not limit it)
  topup <tenant> <amount> [--key <key>]        add <amount> (int ≥ 1) once per key (default: a new random key;
                                               pass the same --key again to retry safely after a failure)
  reconcile <tenant>                           compare Redis with PostgreSQL's ledger (exit 1 when they differ)
env: JANUS_ADMIN_URL (default http://127.0.0.1:8081), JANUS_ADMIN_TOKEN (required)`;

export async function creditsCommand(sub: string | undefined, argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  switch (sub) {
    case 'get': {
      const { positionals } = parse(argv, {}, { names: ['tenant'] });
      const tenant = positionals[0] ?? '';
      const { body } = await new AdminApi(io).expect([200], 'GET', `/v1/tenants/${seg(tenant)}/credits`);
      out.result(body, () => printCredits(out, tenant, body));
      return;
    }
    case 'topup': {
      const { values, positionals } = parse(argv, { key: { type: 'string' } }, { names: ['tenant', 'amount'] });
      const [tenant = '', amountText = ''] = positionals;
      const amount = Number(amountText);
      if (!/^[0-9]+$/.test(amountText) || !Number.isSafeInteger(amount) || amount < 1) throw new UsageError(`amount must be an integer ≥ 1, not "${amountText}"`);
      const key = values.key ?? `cli-${randomUUID()}`;
      const { body } = await new AdminApi(io).expect([200], 'POST', `/v1/tenants/${seg(tenant)}/credits`, { body: { amount }, headers: { 'idempotency-key': key } });
      out.result(body, () => {
        printCredits(out, tenant, body);
        out.note(`idempotency key: ${key}`);
      });
      return;
    }
    case 'reconcile': {
      const { positionals } = parse(argv, {}, { names: ['tenant'] });
      const tenant = positionals[0] ?? '';
      const { body } = await new AdminApi(io).expect([200], 'GET', `/v1/tenants/${seg(tenant)}/credits?reconcile=true`);
      const b = isObject(body) ? body : {};
      const r = isObject(b['reconciliation']) ? b['reconciliation'] : {};
      const ledger = isObject(r['ledger']) ? r['ledger'] : {};
      const redisLine = `balance ${String(b['balance'])}, reserved ${String(b['reserved'])}`;
      const ledgerLine = `balance ${String(ledger['balance'])}, reserved ${String(ledger['reserved'])} (${String(ledger['entries'])} entries)`;
      if (r['ok'] !== true) {
        throw new CliFailure(EXIT.refused, `credits of ${tenant}: Redis and PostgreSQL's ledger differ`, [`redis  ${redisLine}`, `ledger ${ledgerLine}`, `outbox ${String(r['outbox'])} entries not yet published`], body);
      }
      out.result(body, () =>
        out.fields([
          ['tenant', tenant],
          ['redis', redisLine],
          ['ledger', ledgerLine],
          ['result', "ok: PostgreSQL's ledger equals the balance"],
        ]),
      );
      return;
    }
    default:
      throw new UsageError(sub === undefined ? 'credits needs a command' : `unknown command "credits ${sub}"`);
  }
}

function printCredits(out: Output, tenant: string, body: unknown): void {
  const b = isObject(body) ? body : {};
  out.fields([
    ['tenant', tenant],
    ['account', b['account'] === false ? 'none (credits do not limit this tenant)' : 'yes'],
    ['balance', String(b['balance'])],
    ['reserved', String(b['reserved'])],
  ]);
}
