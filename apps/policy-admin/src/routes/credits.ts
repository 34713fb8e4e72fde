import { createRoute, z } from '@hono/zod-openapi';
import { IdempotencyKey, POLICY_BOUNDS, zodFieldErrors } from '@janus/contracts';
import type { CreditsReconciliation } from '@janus/event-store';
import { StateLost, StoreUnavailable, type CreditEntry, type Limiter } from '@janus/limiter';
import { jsonBody } from '../http.js';
import { PROBLEM, invalidRequest, notFound, problem, unavailable } from '../problem.js';
import { problemContent, problems, security, subApp } from './common.js';

const Param = z.object({ id: z.string().openapi({ param: { name: 'id', in: 'path' }, example: 'acme' }) });
const TopUpBody = z.strictObject({ amount: z.number().int().min(1).max(POLICY_BOUNDS.maxCreditsTopUp) }).openapi('CreditsTopUp');
const CreditsQuery = z.object({
  reconcile: z.enum(['true', 'false']).optional().openapi({ description: '`true`: also compare with PostgreSQL\'s ledger (waits up to 10 s for the relay and the persister)' }),
});
const CreditsBody = z
  .object({
    tenant: z.string(),
    account: z.boolean().openapi({ description: 'false: the tenant has no credit account (credits do not limit it); balance and reserved are 0' }),
    balance: z.number().int(),
    reserved: z.number().int(),
    reconciliation: z
      .object({
        ok: z.boolean(),
        ledger: z.object({ balance: z.number(), reserved: z.number(), entries: z.number() }),
        outbox: z.number(),
        waitedMs: z.number(),
      })
      .optional(),
  })
  .openapi('Credits');

export interface CreditsDeps {
  readonly limiter: Pick<Limiter, 'topUpCredits' | 'creditsOf'>;
  readonly policyLoaded: () => boolean;
  /** Whether the running policy has the tenant. */
  readonly tenantExists: (tenant: string) => Promise<boolean>;
  /**
   * The amount of this top-up if PostgreSQL's ledger already holds it (the permanent record of a
   * key: its Redis marker lives 7 days, so a key sent again later is answered from here and applies
   * nothing).
   */
  readonly recordedTopUp: (tenant: string, idempotencyKey: string) => Promise<number | undefined>;
  /** Publishes a top-up's ledger entry (msgID = its id); resolves once JetStream stored it. */
  readonly publish: (entry: CreditEntry) => Promise<void>;
  /** Records a top-up in the audit log, once per entry (a replay after a 503 records it if the first call could not). */
  readonly audit: (actor: string, entry: CreditEntry) => Promise<void>;
  /** Compares Redis with PostgreSQL's ledger (event-store reconcileCredits). */
  readonly reconcile: (tenant: string) => Promise<CreditsReconciliation>;
  /** After a top-up: wake the waiting room (its credits_exhausted jobs may go now). */
  readonly toppedUp: () => void;
}

/**
 * `POST /{id}/credits` `{ "amount" }` with `Idempotency-Key` and `GET /{id}/credits` under
 * `/v1/tenants` (CONTRACT §5 v1.1, docs/credits.md): a tenant's prepaid credits. A repeated key
 * tops up once (and answers the balance as it is now). The top-up's ledger entry is published to
 * JetStream before the answer; if JetStream does not answer, 503, and the same key sent again
 * applies nothing twice and publishes again.
 */
export function creditsRoutes(deps: CreditsDeps) {
  const app = subApp();
  const guard = async <T>(op: () => Promise<T>): Promise<T | Response> => {
    try {
      return await op();
    } catch (error) {
      if (error instanceof StoreUnavailable || error instanceof StateLost) return unavailable(error.message);
      throw error;
    }
  };
  const body200 = { 200: { description: '`{ tenant, account, balance, reserved }`', content: { 'application/json': { schema: CreditsBody } } } };

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/credits',
      tags: ['credits'],
      security,
      summary: "Top up a tenant's prepaid credits (once per Idempotency-Key)",
      middleware: [jsonBody()] as const,
      request: {
        params: Param,
        headers: z.object({ 'idempotency-key': z.string().optional().openapi({ description: 'Required: 1–200 printable characters; a repeated key tops up once' }) }),
        body: { required: true, content: { 'application/json': { schema: TopUpBody } } },
      },
      responses: { ...body200, 400: problems[400], 401: problems[401], 404: problems[404], 415: problems[415], 422: { description: 'The Idempotency-Key already topped up a different amount (`.../idempotency-key-reused`); nothing was applied', content: problemContent }, 503: problems[503] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const key = IdempotencyKey.safeParse(c.req.header('idempotency-key'));
      const body = TopUpBody.safeParse(c.get('body'));
      const errors = [
        ...(key.success ? [] : [{ path: 'Idempotency-Key', message: c.req.header('idempotency-key') === undefined ? 'required: 1–200 printable characters' : key.error.issues[0]?.message ?? 'invalid' }]),
        ...(body.success ? [] : zodFieldErrors(body.error.issues)),
      ];
      if (!key.success || !body.success) return invalidRequest(errors);
      if (!deps.policyLoaded()) return unavailable('the policy is not loaded yet');
      if (!(await deps.tenantExists(id))) return notFound(`tenant "${id}" does not exist`);
      // The same key with another amount is another request: 422, as ingress answers (nothing applied).
      const reused = () =>
        problem(422, PROBLEM.idempotencyKeyReused, 'Idempotency key reused', {
          detail: 'this Idempotency-Key already topped up a different amount; nothing was applied',
          errors: [{ path: 'Idempotency-Key', message: 'already used for a different amount' }],
        });
      const recorded = await deps.recordedTopUp(id, key.data);
      if (recorded !== undefined) {
        if (recorded !== body.data.amount) return reused();
        const state = await guard(() => deps.limiter.creditsOf(id));
        if (state instanceof Response) return state;
        return c.json({ tenant: id, account: true, balance: state.balance, reserved: state.reserved }, 200, { 'idempotent-replayed': 'true' });
      }
      const r = await guard(() => deps.limiter.topUpCredits(id, key.data, body.data.amount));
      if (r instanceof Response) return r;
      if (!r.applied && r.entry.amount !== body.data.amount) return reused();
      try {
        await deps.publish(r.entry);
      } catch (error) {
        // Redis has the top-up (and its outbox entry, which the relay publishes in any case): the
        // same key sent again changes nothing and publishes again.
        return unavailable(`JetStream did not record the top-up (${error instanceof Error ? error.message : String(error)}); send the same Idempotency-Key again`);
      }
      // After every stored publish, not only the first call's: a replay after a 503 audits the
      // top-up and wakes the room if the first call could not (the audit is written once per entry).
      await deps.audit(c.get('actor'), r.entry);
      deps.toppedUp();
      return c.json({ tenant: id, account: true, balance: r.balance, reserved: r.reserved }, 200, r.applied ? {} : { 'idempotent-replayed': 'true' });
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/credits',
      tags: ['credits'],
      security,
      summary: "A tenant's prepaid credits (with ?reconcile=true: compared with PostgreSQL's ledger)",
      request: { params: Param, query: CreditsQuery },
      responses: { ...body200, 400: problems[400], 401: problems[401], 404: problems[404], 503: problems[503] },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { reconcile } = c.req.valid('query');
      const state = await guard(() => deps.limiter.creditsOf(id));
      if (state instanceof Response) return state;
      if (!state.account && !(await deps.tenantExists(id))) return notFound(`tenant "${id}" does not exist`);
      if (reconcile !== 'true') return c.json({ tenant: id, ...state }, 200, { 'cache-control': 'no-store' });
      const rec = await guard(() => deps.reconcile(id));
      if (rec instanceof Response) return rec;
      return c.json(
        {
          tenant: id,
          account: rec.redis.account,
          balance: rec.redis.balance,
          reserved: rec.redis.reserved,
          reconciliation: { ok: rec.ok, ledger: rec.ledger, outbox: rec.outbox, waitedMs: rec.waitedMs },
        },
        200,
        { 'cache-control': 'no-store' },
      );
    },
  );
  return app;
}
