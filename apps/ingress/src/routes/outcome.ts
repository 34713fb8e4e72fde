import { createRoute } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { clampReport, OutcomeEvent, WorkerOutcomeReport, type LedgerEntry } from '@janus/contracts';
import type { JetStreamManager } from '@nats-io/jetstream';
import { StateLost, StoreUnavailable, type Limiter } from '@janus/limiter';
import { jsonBody } from '@janus/http';
import { jetStreamTimeMs, messageIds, publishAll, type NatsNames, type JetStreamTarget } from '@janus/messaging';
import type { RecordedReport } from '@janus/event-store';
import type { Logger } from '@janus/observability';
import { bearerToken } from '../auth.js';
import type { IngressMetrics } from '../metrics.js';
import { problemContent, problemResponses, subApp, z, type JsonParamContext } from '../openapi.js';
import { PROBLEM, problem, unavailable } from '../problem.js';

export interface OutcomeRouteDeps {
  readonly limiter: Pick<Limiter, 'settle' | 'leaseState' | 'isGenuineToken'>;
  readonly js: JetStreamTarget;
  readonly names: NatsNames;
  readonly metrics: IngressMetrics;
  /**
   * Outcome message `seq` as JetStream stored it, or undefined if it is gone: when (ms; "reported in
   * time" means before the lease's expiry) and what it reported (absent if unreadable).
   */
  readonly storedOutcome: (seq: number) => Promise<StoredOutcome | undefined>;
  /**
   * The first report of this attempt made with this token that the persister recorded (event-store
   * firstReportByToken), or undefined: a worker reporting again after losing its first answer is
   * judged by its first report. Recorded within the persister's lag, so a re-report within it is
   * treated as a first one.
   */
  readonly recordedReport: (jobId: string, attempt: number, token: string) => Promise<RecordedReport | undefined>;
  readonly logger?: Pick<Logger, 'error'>;
}

export interface StoredOutcome {
  readonly at: number;
  readonly report?: { readonly outcome: string; readonly actualCost?: number | undefined };
}

/** Reads outcome message `seq` from the outcomes stream (undefined if it is gone). */
export async function readStoredOutcome(jsm: JetStreamManager, stream: string, seq: number): Promise<StoredOutcome | undefined> {
  const stored = await jsm.streams.getMessage(stream, { seq });
  if (stored === null) return undefined;
  const at = jetStreamTimeMs(stored.timestamp);
  if (at === undefined) throw new Error(`unreadable JetStream timestamp ${JSON.stringify(stored.timestamp)} (${stream} #${stored.seq})`);
  let body: unknown;
  try {
    body = stored.json<unknown>();
  } catch {
    body = undefined;
  }
  const event = OutcomeEvent.safeParse(body);
  return { at, ...(event.success ? { report: { outcome: event.data.outcome, actualCost: event.data.actualCost } } : {}) };
}

/** Outcome events published by ingress carry `reportedVia: 'http'` (informative; the scheduler treats them like any report). */
export const REPORTED_VIA_HTTP = 'http';

function leaseConflict(reason: string): Response {
  const why = reason === 'already_settled' || reason === 'settled' || reason === 'revoked' ? 'was already settled' : reason === 'expired' ? 'has expired' : 'is unknown (expired, revoked or reaped)';
  return problem(409, PROBLEM.leaseConflict, 'Lease conflict', { detail: `the lease ${why}; the outcome changes nothing` });
}

const route = createRoute({
  method: 'post',
  path: '/v1/jobs/{jobId}/outcome',
  summary: 'Report the outcome of a job (workers that do not speak NATS)',
  description: '`Authorization: Bearer <lease token>` from the job message. Publishes the outcome event (the retry-scheduler applies it), then settles the lease.',
  security: [{ leaseToken: [] }],
  request: {
    params: z.object({ jobId: z.string().min(1).max(200) }),
    body: { required: true, content: { 'application/json': { schema: WorkerOutcomeReport } } },
  },
  responses: {
    204: { description: 'Recorded durably (and settled)' },
    400: problemResponses[400],
    401: { description: 'Missing or forged lease token', content: problemContent },
    409: { description: 'The lease expired, was already settled, or is not for this job and attempt; nothing changed', content: problemContent },
    415: problemResponses[415],
    422: { description: 'The path jobId or the header token does not match the body', content: problemContent },
    503: problemResponses[503],
  },
});

export function outcomeRoutes(deps: OutcomeRouteDeps) {
  const app = subApp();
  // Authentication first, as on every route (CONTRACT §3: no key, or one that is not genuine, is
  // 401): before the body is read or validated. A token's signature is checked without Redis.
  const authenticated: MiddlewareHandler = async (c, next) => {
    const token = bearerToken(c.req.header('authorization'));
    if (token === undefined) return problem(401, PROBLEM.unauthorized, 'Unauthorized', { detail: 'missing "Authorization: Bearer <lease token>"' });
    if (!deps.limiter.isGenuineToken(token)) return problem(401, PROBLEM.unauthorized, 'Unauthorized', { detail: 'the lease token is not genuine' });
    await next();
    return undefined;
  };
  app.openapi({ ...route, middleware: [authenticated, jsonBody({ cap: 64 * 1024 })] as const }, (c) => report(c) as never);
  async function report(c: JsonParamContext<WorkerOutcomeReport, { jobId: string }>): Promise<Response> {
    const token = bearerToken(c.req.header('authorization'));
    if (token === undefined) {
      return problem(401, PROBLEM.unauthorized, 'Unauthorized', { detail: 'missing "Authorization: Bearer <lease token>"' });
    }
    const { jobId } = c.req.valid('param');
    // an over-long error or retryAfterMs reads as it does on NATS (cut to 2 KiB, a day)
    const body = clampReport(c.req.valid('json'));
    const mismatches = [
      ...(body.jobId !== jobId ? [{ path: 'jobId', message: `differs from the path (${jobId})` }] : []),
      ...(body.leaseToken !== token ? [{ path: 'leaseToken', message: 'differs from the Authorization bearer token' }] : []),
    ];
    if (mismatches.length > 0) {
      return problem(422, PROBLEM.unprocessable, 'Outcome does not match its request', {
        detail: 'the outcome names another attempt than the one its path and lease token are for',
        errors: mismatches,
      });
    }

    // Publish first, settle second: once the report is in JetStream, the retry-scheduler applies it
    // (settle, retry or dead letter) even if this process dies or the settle below fails, so an
    // HTTP worker's outcome can never be lost between the two steps. A report whose publish failed
    // changed nothing: the worker may report again (same msgID), or the lease expires.
    let state;
    try {
      state = await deps.limiter.leaseState(token);
    } catch (error) {
      if (error instanceof StoreUnavailable || error instanceof StateLost) return unavailable(`${error.message}; nothing was recorded`);
      throw error;
    }
    if (!state.ok && state.reason === 'invalid_token') {
      return problem(401, PROBLEM.unauthorized, 'Unauthorized', { detail: 'the lease token is not genuine' });
    }
    // 'pending' or 'running': held (a worker holds the message, so it is in the stream). An expired
    // lease goes on: a report of it may already be in JetStream from before the expiry (the
    // worker's first try, whose answer it never got). Publishing again is then a duplicate of that
    // message, whose time decides; a first report made now is simply late (409 below).
    if (!state.ok || !['active', 'pending', 'running', 'expired'].includes(state.lease.state)) {
      return leaseConflict(state.ok ? state.lease.state : 'unknown');
    }
    const lease = state.lease;
    // A genuine token of another job (or attempt) reports nothing for this one.
    if (lease.jobId !== jobId || lease.attempt !== body.attempt) {
      return problem(409, PROBLEM.leaseConflict, 'Lease conflict', { detail: `the lease token is not for attempt ${body.attempt} of job ${jobId}; the outcome changes nothing` });
    }
    const event: OutcomeEvent & { reportedVia: string } = {
      jobId: lease.jobId,
      attempt: lease.attempt,
      leaseToken: token,
      outcome: body.outcome,
      ...(body.error !== undefined ? { error: body.error } : {}),
      ...(body.actualCost !== undefined ? { actualCost: body.actualCost } : {}),
      ...(body.retryable !== undefined ? { retryable: body.retryable } : {}),
      ...(body.throttled !== undefined ? { throttled: body.throttled } : {}),
      ...(body.retryAfterMs !== undefined ? { retryAfterMs: body.retryAfterMs } : {}),
      ...(body.dependency !== undefined ? { dependency: body.dependency } : {}),
      ...(body.started !== undefined ? { started: body.started } : {}),
      reportedVia: REPORTED_VIA_HTTP,
    };
    // A report of this attempt with this token that is already on record decides (the worker lost
    // its answer and reports again): another outcome changes nothing, the same one settles as of
    // when the first was stored. (JetStream's duplicate window on outcomes is too short to tell:
    // streams.ts.) A lookup that fails is no answer: publish, as for a first report.
    const recorded = await deps.recordedReport(lease.jobId, lease.attempt, token).catch(() => undefined);
    if (recorded !== undefined) {
      if (recorded.outcome !== body.outcome || recorded.actualCost !== body.actualCost) {
        return problem(409, PROBLEM.leaseConflict, 'Lease conflict', { detail: 'another outcome was already reported for this attempt; this one changes nothing' });
      }
      return settleAndAnswer(c, token, lease, body, async () => recorded.at);
    }
    const report = [{ subject: deps.names.subjects.outcome(lease.jobType), body: event, msgID: messageIds.attempt(lease.jobId, lease.attempt) }];
    let published = await publishAll(deps.js, report, { timeoutMs: 2_000 }).catch(() => undefined);
    if (!published?.ok) published = await publishAll(deps.js, report, { timeoutMs: 2_000 }).catch(() => undefined);
    if (!published?.ok) {
      deps.metrics.publishFailures.inc({ stream: 'outcomes' });
      deps.logger?.error({ jobId: lease.jobId, attempt: lease.attempt }, 'outcome event could not be published; nothing was settled');
      return unavailable('JetStream did not acknowledge the outcome event; nothing was settled, report again');
    }

    // Settle now, so that slots free at once (the scheduler would otherwise do it when it reads the
    // event; it finds the lease settled with this outcome and goes on from there). As the scheduler
    // does, judge "in time" by when JetStream stored the report: a lease that expired after that
    // (publishing was slow, or this is a re-report) still settles, unless the reaper got it first —
    // and the reaper leaves it alone while this report waits unprocessed (outcome-horizon.ts).
    const seq = published.results[0]?.seq;
    if (published.results[0]?.duplicate === true && seq !== undefined) {
      // JetStream already holds a report of this attempt (same msgID): that one is what the
      // scheduler applies, so it decides. Another outcome (a worker that reported again
      // differently after losing its first answer) settles nothing here: 409, as for a settled lease.
      const first = await deps.storedOutcome(seq).catch(() => null);
      if (first === null) return unavailable('an earlier report of this attempt is recorded, but it could not be read; report again');
      const same = first?.report !== undefined && first.report.outcome === body.outcome && first.report.actualCost === body.actualCost;
      if (first !== undefined && !same) {
        return problem(409, PROBLEM.leaseConflict, 'Lease conflict', { detail: 'another outcome was already reported for this attempt; this one changes nothing' });
      }
    }
    return settleAndAnswer(c, token, lease, body, async () => (seq === undefined ? undefined : (await deps.storedOutcome(seq))?.at));
  }

  /**
   * Settles the lease with the worker's report and answers it. A lease that has expired since still
   * settles if the report was stored before the expiry (`reportedAt`: when JetStream stored it;
   * a rejection means it could not be read).
   */
  async function settleAndAnswer(
    c: JsonParamContext<WorkerOutcomeReport, { jobId: string }>,
    token: string,
    lease: { readonly jobId: string; readonly attempt: number },
    body: WorkerOutcomeReport,
    reportedAt: () => Promise<number | undefined>,
  ): Promise<Response> {
    const expect = { jobId: lease.jobId, attempt: lease.attempt };
    let settled;
    try {
      settled = await deps.limiter.settle(token, body.outcome, body.actualCost, { expect });
      if (!settled.ok && settled.reason === 'expired') {
        const at = await reportedAt().catch(() => null);
        if (at === null) {
          // The report is durable; whether it was in time, the scheduler decides. A re-report gets the answer.
          return unavailable('the outcome was recorded, but whether it came before the lease expired could not be checked; report again');
        }
        if (at !== undefined) settled = await deps.limiter.settle(token, body.outcome, body.actualCost, { reportedAt: at, expect });
      }
    } catch (error) {
      if (error instanceof StoreUnavailable || error instanceof StateLost) {
        // The report is durable: the scheduler settles it when the store is back.
        deps.logger?.error({ jobId: lease.jobId, attempt: lease.attempt }, 'outcome recorded; the scheduler will settle it');
        return c.body(null, 204);
      }
      throw error;
    }
    if (!settled.ok) {
      if (settled.reason === 'already_settled') {
        // The scheduler read the event first and settled it: fine if with this very outcome.
        const now = await deps.limiter.leaseState(token).catch(() => undefined);
        if (now?.ok && now.lease.state === 'settled' && now.lease.outcome === body.outcome) return c.body(null, 204);
      }
      return leaseConflict(settled.reason);
    }
    if (settled.lease.reserved > 0) {
      const l = settled.lease;
      const entry: LedgerEntry = { tenant: l.tenant, kind: 'settle', amount: l.actual, jobId: l.jobId, attempt: l.attempt, at: new Date(l.settledAt).toISOString() };
      const ledger = [{ subject: deps.names.subjects.ledger(l.tenant), body: entry, msgID: messageIds.ledger(l.jobId, l.attempt, 'settle') }];
      // Best effort: the scheduler publishes it again (same msgID) when it reads the outcome event.
      const ok = await publishAll(deps.js, ledger, { timeoutMs: 2_000 }).catch(() => undefined);
      if (!ok?.ok) deps.metrics.publishFailures.inc({ stream: 'ledger' });
    }
    return c.body(null, 204);
  }
  return app;
}
