import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiscardPolicy, type StreamConfig } from '@nats-io/jetstream';
import type { JobMessage, PolicyDocumentInput } from '@janus/contracts';
import { apiKeys } from '@janus/db';
import { announceConfigChange, generateApiKey } from '@janus/policy';
import { dropRedisNamespace, startAppProcess, TEST_SECRETS, testEnv, waitFor, type AppProcess } from '@janus/testing';
import { openProtectionStack, type ProtectionStack } from './protection-stack.js';

/**
 * Prepaid credits survive a Redis state loss (CONTRACT v1.1 §2 Tenant "Credits", §6.5;
 * docs/credits.md "Redis loss"), with the real apps as child processes (policy-admin, ingress, the
 * retry-scheduler with its outbox relay, the persister) and worker SDK workers.
 *
 * Before the loss the ledger is reconciled; then the ledger stream refuses writes for a moment (a
 * full stream), so that two movements are still in the Redis outbox when Redis loses its keys — the
 * two cases the rebuild must judge from PostgreSQL alone:
 *   - the settle of a job whose outcome was applied (its lease is not restored): the rebuild charges
 *     its open reservation at the ESTIMATE, conservatively (docs/credits.md), not at the lost actual;
 *   - the reserve of a job still running (its lease is restored): it is reserved again.
 * Then: the balance and reserved PostgreSQL implies, admission exactly up to the rebuilt available
 * balance, a top-up key used before the loss still tops up once, the running jobs settle against
 * the rebuilt reservations, and the ledger equals Redis again.
 */
const POLICY: PolicyDocumentInput = {
  dependencies: { api: {} },
  tenants: { acme: {}, beta: {} },
  jobTypes: {
    // estimate 7 (the dependency's cost) unless the request names a cost; leases outlive the test
    work: { dependencies: [{ name: 'api', cost: 7 }], timeoutMs: 120_000 },
    // nobody works on these: their reservations stay while the test runs
    idle: { dependencies: [{ name: 'api', cost: 7 }], timeoutMs: 120_000 },
    // beta's probe (no credit account): admission reopened?
    ping: { timeoutMs: 120_000 },
  },
};

let stack: ProtectionStack;
let admin: AppProcess;
let betaKey: string;
/** Jobs a worker holds until the test releases them with an actual cost. */
const held = new Map<string, (actualCost: number) => void>();

beforeAll(async () => {
  stack = await openProtectionStack('credits_state_loss', POLICY, { persister: true });
  const beta = generateApiKey();
  await stack.bed.db.db.insert(apiKeys).values({ keyId: beta.keyId, tenant: 'beta', keyHash: beta.keyHash });
  betaKey = beta.key;
  // the apps load API keys at start and on a config event: announce one until beta's key is known
  await waitFor(
    async () => {
      await announceConfigChange(stack.bed.nc, stack.bed.names, stack.bed.version);
      const res = await fetch(`${stack.ingresses[0]!.url}/v1/usage`, { headers: { authorization: `Bearer ${betaKey}` }, signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      return res.status === 200;
    },
    20_000,
    500,
  );
  admin = await startAppProcess('policy-admin', testEnv(stack.bed.ns, { LOG_LEVEL: 'warn' }));
  await stack.worker(
    'work',
    async (job: JobMessage) => {
      const p = (job.payload ?? {}) as { actual?: number; hold?: boolean };
      if (p.hold !== true) return { actualCost: p.actual ?? 7 };
      return { actualCost: await new Promise<number>((resolve) => held.set(job.jobId, resolve)) };
    },
    8,
  );
}, 120_000);

afterAll(async () => {
  for (const release of held.values()) release(1);
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

const credits = async () => (await adminCall('GET', '/v1/tenants/acme/credits')).body as { balance: number; reserved: number };

/** Submits an acme job; returns its id (expects 202). */
async function submit(body: Record<string, unknown>): Promise<string> {
  const res = await stack.post(body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body['jobId'] as string;
}

const q = async <T extends Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> => (await stack.bed.db.pool.query<T>(text, params)).rows;

/** PostgreSQL's balance for acme: Σ topup − Σ settle + Σ overrun. */
const pgBalance = async (): Promise<number> =>
  Number(
    (await q<{ b: string }>(`SELECT COALESCE(sum(CASE kind WHEN 'topup' THEN amount WHEN 'settle' THEN -amount WHEN 'overrun' THEN amount ELSE 0 END), 0)::text AS b FROM credit_ledger WHERE tenant = 'acme'`))[0]?.b ??
      0,
  );

/** acme's credit_ledger entries of job `jobId`, as "kind amount". */
const entriesOf = async (jobId: string): Promise<string[]> =>
  (await q<{ kind: string; amount: string }>(`SELECT kind, amount::text FROM credit_ledger WHERE job_id = $1 ORDER BY kind`, [jobId])).map((r) => `${r.kind} ${r.amount}`);

/** Submits beta's probe until one is admitted (a 503 while the state is lost); returns ms since `since`. */
async function reopenedAfter(since: number): Promise<number> {
  let closed = 0;
  await waitFor(
    async () => {
      const res = await fetch(`${stack.ingresses[0]!.url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${betaKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'ping' }),
        signal: AbortSignal.timeout(10_000),
      });
      await res.body?.cancel();
      if (res.status === 503) closed += 1;
      else expect(res.status).toBe(202);
      return res.status === 202;
    },
    40_000,
    100,
  );
  expect(closed).toBeGreaterThan(0); // it was closed: the loss was seen
  return Date.now() - since;
}

describe('prepaid credits after a Redis state loss', () => {
  it('rebuilds balance and reserved from PostgreSQL’s ledger and the live leases; admission and settles go on exactly from there', async () => {
    const { jsm, names } = stack.bed;

    // 1. Top up 100; three jobs of estimate 7 settle at 5: balance 85.
    expect(await adminCall('POST', '/v1/tenants/acme/credits', { amount: 100 }, { 'idempotency-key': 'topup-1' })).toMatchObject({ status: 200, body: { balance: 100, reserved: 0 } });
    const settled = await Promise.all([1, 2, 3].map(() => submit({ type: 'work', payload: { actual: 5 } })));
    await waitFor(async () => (await credits()).reserved === 0, 20_000, 100);
    expect(await credits()).toMatchObject({ balance: 85, reserved: 0 });

    // Still running: `spent` (estimate 7) and two of cost 10. Reserved 27, all recorded.
    const spent = await submit({ type: 'work', payload: { hold: true } });
    const running = [await submit({ type: 'work', cost: 10, payload: { hold: true } }), await submit({ type: 'work', cost: 10, payload: { hold: true } })];
    await waitFor(() => held.has(spent) && running.every((id) => held.has(id)), 20_000, 50);
    const before = await adminCall('GET', '/v1/tenants/acme/credits?reconcile=true');
    expect(before.body).toMatchObject({ balance: 85, reserved: 27, reconciliation: { ok: true, ledger: { balance: 85, reserved: 27 }, outbox: 0 } });

    // 2. The ledger stream refuses writes (full, discard new): the relay cannot publish, the outbox keeps its entries.
    const info = await jsm.streams.info(names.streams.ledger);
    const ledgerConfig: StreamConfig = info.config;
    await jsm.streams.update(names.streams.ledger, { ...ledgerConfig, max_msgs: info.state.messages, discard: DiscardPolicy.New });
    let late: string;
    let lostAt: number;
    try {
      // a third job of cost 10 is admitted: its reserve stays in the outbox
      late = await submit({ type: 'work', cost: 10, payload: { hold: true } });
      running.push(late);
      await waitFor(() => held.has(late), 20_000, 50);
      // `spent` finishes at 2: the scheduler settles it and applies the outcome (APPLIED is another
      // stream), but its settle stays in the outbox
      held.get(spent)!(2);
      await waitFor(async () => (await q(`SELECT 1 FROM attempts WHERE job_id = $1 AND outcome = 'succeeded'`, [spent])).length === 1, 20_000, 100);
      await waitFor(async () => (await q(`SELECT 1 FROM attempts WHERE job_id = $1 AND lease_id IS NOT NULL`, [late])).length === 1, 20_000, 100);
      expect(await credits()).toMatchObject({ balance: 83, reserved: 30 });
      expect(await stack.bed.limiter.credits.outboxLength()).toBe(2);
      expect(await entriesOf(spent)).toEqual(['reserve 7']);
      expect(await entriesOf(late)).toEqual([]);

      // 3. Redis loses every key of the namespace (the outbox with them).
      lostAt = Date.now();
      await dropRedisNamespace(stack.bed.settings.redisUrl, stack.bed.ns);
    } finally {
      await jsm.streams.update(names.streams.ledger, ledgerConfig);
    }
    const reopenedMs = await reopenedAfter(lostAt);
    console.log(`[credits state loss] admission reopened ${reopenedMs} ms after the loss`);
    expect(reopenedMs).toBeLessThan(30_000);

    // 4. Rebuilt from PostgreSQL: the ledger's balance 85, less `spent`'s open reservation charged at
    // its estimate 7 — conservative: its actual 2 was lost with the outbox, so the tenant pays 5 more
    // than it used — and reserved 10 + 10 (recorded) + 10 (`late`, reserved again): 78 / 30.
    expect(await credits()).toMatchObject({ balance: 78, reserved: 30 });

    // A top-up key used before the loss still tops up once.
    const replay = await adminCall('POST', '/v1/tenants/acme/credits', { amount: 100 }, { 'idempotency-key': 'topup-1' });
    expect(replay).toMatchObject({ status: 200, body: { balance: 78, reserved: 30 } });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');

    // Admission respects the rebuilt available balance exactly: 78 − 30 = 48 = 6 × 7 + 6.
    for (let i = 0; i < 6; i++) await submit({ type: 'idle' });
    const over = await stack.post({ type: 'idle' });
    expect(over).toMatchObject({ status: 429, body: { reason: 'credits_exhausted' } });
    await submit({ type: 'idle', cost: 6 });
    expect(await stack.post({ type: 'idle', cost: 1 })).toMatchObject({ status: 429, body: { reason: 'credits_exhausted' } });
    expect(await credits()).toMatchObject({ balance: 78, reserved: 78 });

    // 5. The running jobs finish (3, 6, and 12 — above its estimate): each settles its rebuilt reservation.
    const actuals = [3, 6, 12];
    running.forEach((id, i) => held.get(id)!(actuals[i]!));
    await waitFor(async () => (await credits()).reserved === 48, 20_000, 100);
    expect(await credits()).toMatchObject({ balance: 78 - 21, reserved: 48 });

    const after = await adminCall('GET', '/v1/tenants/acme/credits?reconcile=true');
    console.log(`[credits state loss] after: ${JSON.stringify(after.body)}`);
    expect(after.body).toMatchObject({ balance: 57, reserved: 48, reconciliation: { ok: true, ledger: { balance: 57, reserved: 48 }, outbox: 0 } });
    expect(await pgBalance()).toBe(57);
    // what the rebuild recorded, once each: `spent` charged at its estimate, `late` reserved again
    expect(await entriesOf(spent)).toEqual(['reserve 7', 'settle 7']);
    expect(await entriesOf(late)).toEqual(['reserve 10', 'settle 12']);
    for (const [id, actual] of [
      [running[0]!, 3],
      [running[1]!, 6],
    ] as const) {
      expect(await entriesOf(id)).toEqual(['reserve 10', `settle ${actual}`]);
    }
    for (const id of settled) expect(await entriesOf(id)).toEqual(['reserve 7', 'settle 5']);
    expect((await q(`SELECT 1 FROM credit_ledger WHERE kind = 'topup'`)).length).toBe(1);
  }, 150_000);
});
