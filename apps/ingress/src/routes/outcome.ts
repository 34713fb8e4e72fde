import { createRoute } from '@hono/zod-openapi';
import { WorkerOutcome, type LedgerEntry, type OutcomeEvent } from '@janus/contracts';
import { StateLost, StoreUnavailable, type Limiter } from '@janus/limiter';
import { jsonBody } from '@janus/http';
import { messageIds, publishAll, type NatsNames, type JetStreamTarget } from '@janus/messaging';
import type { Logger } from '@janus/observability';
import { bearerToken } from '../auth.js';
import type { IngressMetrics } from '../metrics.js';
import { problemContent, problemResponses, subApp, z, type JsonParamContext } from '../openapi.js';
import { PROBLEM, problem, unavailable } from '../problem.js';

export interface OutcomeRouteDeps {
  readonly limiter: Pick<Limiter, 'settle'>;
  readonly js: JetStreamTarget;
  readonly names: NatsNames;
  readonly metrics: IngressMetrics;
  readonly logger?: Pick<Logger, 'error'>;
}

/** Outcome events published by ingress carry this marker: the lease is already settled. */
export const SETTLED_BY_INGRESS = 'ingress';

const route = createRoute({
  method: 'post',
  path: '/v1/jobs/{jobId}/outcome',
  summary: 'Report the outcome of a job (workers that do not speak NATS)',
  description: '`Authorization: Bearer <lease token>` from the job message. Settles the lease, then publishes the outcome event.',
  security: [{ leaseToken: [] }],
  request: {
    params: z.object({ jobId: z.string().min(1).max(200) }),
    body: { required: true, content: { 'application/json': { schema: WorkerOutcome } } },
  },
  responses: {
    204: { description: 'Settled and published' },
    400: problemResponses[400],
    401: { description: 'Missing or forged lease token', content: problemContent },
    409: { description: 'The lease expired or was already settled; nothing changed', content: problemContent },
    415: problemResponses[415],
    422: { description: 'The path jobId or the header token does not match the body', content: problemContent },
    503: problemResponses[503],
  },
});

export function outcomeRoutes(deps: OutcomeRouteDeps) {
  const app = subApp();
  app.openapi({ ...route, middleware: [jsonBody({ cap: 64 * 1024 })] as const }, (c) => report(c) as never);
  async function report(c: JsonParamContext<WorkerOutcome, { jobId: string }>): Promise<Response> {
    const token = bearerToken(c.req.header('authorization'));
    if (token === undefined) {
      return problem(401, PROBLEM.unauthorized, 'Unauthorized', { detail: 'missing "Authorization: Bearer <lease token>"' });
    }
    const { jobId } = c.req.valid('param');
    const body = c.req.valid('json');
    const mismatches = [
      ...(body.jobId !== jobId ? [{ path: 'jobId', message: `differs from the path (${jobId})` }] : []),
      ...(body.leaseToken !== token ? [{ path: 'leaseToken', message: 'differs from the Authorization bearer token' }] : []),
    ];
    if (mismatches.length > 0) {
      return problem(422, PROBLEM.unprocessable, 'Outcome does not match its request', { errors: mismatches });
    }

    let settled;
    try {
      settled = await deps.limiter.settle(token, body.outcome, body.actualCost);
    } catch (error) {
      if (error instanceof StoreUnavailable || error instanceof StateLost) return unavailable(`${error.message}; nothing was settled`);
      throw error;
    }
    if (!settled.ok) {
      if (settled.reason === 'invalid_token') {
        return problem(401, PROBLEM.unauthorized, 'Unauthorized', { detail: 'the lease token is not genuine' });
      }
      const why = settled.reason === 'already_settled' ? 'was already settled' : settled.reason === 'expired' ? 'has expired' : 'is unknown (expired, revoked or reaped)';
      return problem(409, PROBLEM.leaseConflict, 'Lease conflict', { detail: `the lease ${why}; the outcome changes nothing` });
    }

    const lease = settled.lease;
    const at = new Date(lease.settledAt).toISOString();
    // The lease is authoritative for jobId and attempt. `settledBy` tells the retry-scheduler the lease
    // is settled already (it would find it settled anyway).
    const event: OutcomeEvent & { settledBy: string } = {
      jobId: lease.jobId,
      attempt: lease.attempt,
      leaseToken: token,
      outcome: body.outcome,
      ...(body.error !== undefined ? { error: body.error } : {}),
      ...(body.actualCost !== undefined ? { actualCost: body.actualCost } : {}),
      settledBy: SETTLED_BY_INGRESS,
    };
    const messages: { subject: string; body: unknown; msgID: string }[] = [
      { subject: deps.names.subjects.outcome(lease.jobType), body: event, msgID: messageIds.attempt(lease.jobId, lease.attempt) },
    ];
    if (lease.reserved > 0) {
      const entry: LedgerEntry = { tenant: lease.tenant, kind: 'settle', amount: lease.actual, jobId: lease.jobId, attempt: lease.attempt, at };
      messages.push({ subject: deps.names.subjects.ledger(lease.tenant), body: entry, msgID: messageIds.ledger(lease.jobId, lease.attempt, 'settle') });
    }
    let result = await publishAll(deps.js, messages, { timeoutMs: 2_000 }).catch(() => undefined);
    if (result && !result.ok) result = await publishAll(deps.js, result.failed.map((i) => messages[i]!), { timeoutMs: 2_000 }).catch(() => undefined);
    if (!result?.ok) {
      deps.metrics.publishFailures.inc({ stream: 'outcomes' });
      deps.logger?.error({ jobId: lease.jobId, attempt: lease.attempt }, 'lease settled but its outcome event could not be published');
      return unavailable('the lease was settled but JetStream did not acknowledge the outcome event');
    }
    return c.body(null, 204);
  }
  return app;
}
