import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAppProcess, TEST_SECRETS, testEnv, waitFor, type AppProcess } from '@janus/testing';
import { openProtectionStack, type ProtectionStack } from './protection-stack.js';

/**
 * Prepaid credits end to end (CONTRACT §2 Tenant "Credits", §5; docs/credits.md), with the real
 * apps as child processes: policy-admin tops up, ingress admits (429 `credits_exhausted` once the
 * balance is reserved), workers settle with their actual costs through the scheduler, the
 * scheduler's relay publishes the credits outbox to the ledger stream and the persister stores it
 * in `credit_ledger`, whose sums then equal Redis's balance (the reconciliation).
 */
let stack: ProtectionStack;
let admin: AppProcess;

beforeAll(async () => {
  stack = await openProtectionStack(
    'credits_e2e',
    {
      dependencies: { api: {} },
      tenants: { acme: {} },
      jobTypes: { work: { dependencies: [{ name: 'api', cost: 7 }], timeoutMs: 30_000 } },
    },
    { persister: true },
  );
  admin = await startAppProcess('policy-admin', testEnv(stack.bed.ns, { LOG_LEVEL: 'warn' }));
}, 120_000);

afterAll(async () => {
  await admin?.kill('SIGKILL').catch(() => undefined);
  await stack?.close();
});

async function adminCall(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${admin.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TEST_SECRETS.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(20_000),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

const pgSum = async (): Promise<number> =>
  Number(
    (
      await stack.bed.db.pool.query<{ b: string }>(
        `SELECT COALESCE(sum(CASE kind WHEN 'topup' THEN amount WHEN 'settle' THEN -amount WHEN 'overrun' THEN amount ELSE 0 END), 0)::text AS b FROM credit_ledger WHERE tenant = 'acme'`,
      )
    ).rows[0]?.b ?? 0,
  );

describe('prepaid credits, end to end', () => {
  it('tops up once per key, admits exactly what the balance covers, settles at actual costs, and the ledger equals the balance', async () => {
    // a top-up without a key names the header
    const bad = await adminCall('POST', '/v1/tenants/acme/credits', { amount: 100 });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('Idempotency-Key');
    expect((await adminCall('POST', '/v1/tenants/nobody/credits', { amount: 1 }, { 'idempotency-key': 'x' })).status).toBe(404);
    expect(await adminCall('GET', '/v1/tenants/acme/credits')).toMatchObject({ status: 200, body: { account: false, balance: 0, reserved: 0 } });

    // the same key twice: one top-up
    const first = await adminCall('POST', '/v1/tenants/acme/credits', { amount: 100 }, { 'idempotency-key': 'topup-1' });
    const again = await adminCall('POST', '/v1/tenants/acme/credits', { amount: 100 }, { 'idempotency-key': 'topup-1' });
    expect(first).toMatchObject({ status: 200, body: { balance: 100, reserved: 0 } });
    expect(again).toMatchObject({ status: 200, body: { balance: 100, reserved: 0 } });
    expect(again.headers.get('idempotent-replayed')).toBe('true');

    // 64 concurrent submissions of cost 7 against 100: exactly 14 admitted
    const results = await Promise.all(Array.from({ length: 64 }, () => stack.post({ type: 'work', cost: 7 })));
    const admitted = results.filter((r) => r.status === 202);
    const refused = results.filter((r) => r.status === 429);
    expect(admitted).toHaveLength(14);
    expect(refused).toHaveLength(50);
    for (const r of refused) expect(r.body['reason']).toBe('credits_exhausted');
    expect((await adminCall('GET', '/v1/tenants/acme/credits')).body).toMatchObject({ account: true, balance: 100, reserved: 98 });
    const usage = await fetch(`${stack.ingresses[0]!.url}/v1/usage`, { headers: { authorization: `Bearer ${stack.apiKey}` } }).then((r) => r.json() as Promise<Record<string, unknown>>);
    expect(usage['credits']).toEqual({ balance: 100, reserved: 98 });

    // workers settle at random actual costs, some above the estimate
    let seed = 42;
    const actuals: number[] = [];
    await stack.worker('work', async () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const actualCost = 1 + (seed % 12);
      actuals.push(actualCost);
      return { actualCost };
    }, 4);
    await waitFor(async () => actuals.length === 14 && (await adminCall('GET', '/v1/tenants/acme/credits')).body['reserved'] === 0, 30_000, 100);
    const sum = actuals.reduce((a, b) => a + b, 0);
    expect(actuals.some((a) => a > 7)).toBe(true);
    const after = await adminCall('GET', '/v1/tenants/acme/credits?reconcile=true');
    console.log(`[credits] Σ actual ${sum}: balance ${String(after.body['balance'])}, reconciliation ${JSON.stringify(after.body['reconciliation'])}`);
    expect(after.body).toMatchObject({ balance: Math.max(0, 100 - sum), reserved: 0, reconciliation: { ok: true, outbox: 0 } });
    expect(await pgSum()).toBe(Math.max(0, 100 - sum));
    // a second top-up with a new key adds; the balance equals the ledger again
    expect((await adminCall('POST', '/v1/tenants/acme/credits', { amount: 50 }, { 'idempotency-key': 'topup-2' })).body['balance']).toBe(Math.max(0, 100 - sum) + 50);
    expect((await adminCall('GET', '/v1/tenants/acme/credits?reconcile=true')).body).toMatchObject({ reconciliation: { ok: true } });
    const audit = await adminCall('GET', '/v1/audit?limit=10');
    expect((audit.body['entries'] as { action: string }[]).filter((e) => e.action === 'credits.topup')).toHaveLength(2);

    // A key whose Redis marker is gone (it lives 7 days) is still answered from PostgreSQL's ledger:
    // drop topup-1's marker, send the key again, nothing is added.
    const before = (await adminCall('GET', '/v1/tenants/acme/credits')).body['balance'];
    const markers = await stack.bed.redis.keys(`${stack.bed.ns}:*topup*`);
    expect(markers.length).toBeGreaterThanOrEqual(2);
    await stack.bed.redis.del(...markers);
    const late = await adminCall('POST', '/v1/tenants/acme/credits', { amount: 100 }, { 'idempotency-key': 'topup-1' });
    expect([late.status, late.headers.get('idempotent-replayed'), late.body['balance']]).toEqual([200, 'true', before]);
    expect(await pgSum()).toBe(before);
    // The same key with another amount is another request: 422, nothing applied (from PostgreSQL's
    // record now that the marker is gone, and from the marker for a fresh key).
    const other = await adminCall('POST', '/v1/tenants/acme/credits', { amount: 7 }, { 'idempotency-key': 'topup-1' });
    expect([other.status, other.body['type']]).toEqual([422, expect.stringContaining('/idempotency-key-reused')]);
    const fresh = await adminCall('POST', '/v1/tenants/acme/credits', { amount: 5 }, { 'idempotency-key': 'topup-3' });
    expect(fresh.body['balance']).toBe(Number(before) + 5);
    expect((await adminCall('POST', '/v1/tenants/acme/credits', { amount: 6 }, { 'idempotency-key': 'topup-3' })).status).toBe(422);
    expect((await adminCall('GET', '/v1/tenants/acme/credits')).body['balance']).toBe(Number(before) + 5);
    // One audit entry per top-up however often its key is sent.
    await adminCall('POST', '/v1/tenants/acme/credits', { amount: 5 }, { 'idempotency-key': 'topup-3' });
    const audited = await adminCall('GET', '/v1/audit?limit=20');
    expect((audited.body['entries'] as { action: string }[]).filter((e) => e.action === 'credits.topup')).toHaveLength(3);
  }, 120_000);
});
