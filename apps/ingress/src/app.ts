import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { BlankEnv } from 'hono/types';
import type { Registry } from 'prom-client';
import type { JobView } from '@janus/contracts';
import type { JobListQuery, JobPage, JobRecord } from '@janus/event-store';
import type { CompiledPolicy, Limiter } from '@janus/limiter';
import type { NatsNames, JetStreamTarget } from '@janus/messaging';
import { apiDocsRoutes, problemNotFoundFor, problemOnError } from '@janus/http';
import { healthRoutes, type Logger, type ReadinessCheck } from '@janus/observability';
import { AdmissionService, type AdmissionServiceDeps } from './admission.js';
import { AuthFailureThrottle, tenantAuth, type TenantKeys } from './auth.js';
import { DecisionRecorder } from './decisions.js';
import { IngressMetrics } from './metrics.js';
import { jobsRoutes, type WaitingRoomAccess } from './routes/jobs.js';
import { listRoutes } from './routes/list.js';
import { replayRoutes } from './routes/replay.js';
import { outcomeRoutes, type OutcomeRouteDeps } from './routes/outcome.js';
import { usageRoutes } from './routes/usage.js';

export interface IngressDeps {
  /** The running compiled policy, or undefined until one is loaded (then job routes answer 503). */
  readonly policy: () => CompiledPolicy | undefined;
  readonly limiter: Pick<Limiter, 'admit' | 'confirm' | 'revoke' | 'withdraw' | 'takeOver' | 'settle' | 'leaseState' | 'isGenuineToken' | 'usage' | 'failOpenLeases' | 'idempotencyState'>;
  readonly keys: TenantKeys;
  readonly js: JetStreamTarget;
  readonly names: NatsNames;
  readonly natsUp: () => boolean;
  /** The tenant's job as GET shows it (persister and waiting room merged). */
  readonly jobView: (tenant: string, jobId: string) => Promise<JobView | undefined>;
  /** `GET /v1/jobs`: a page of the tenant's jobs as GET shows them. */
  readonly listJobs: (tenant: string, query: JobListQuery) => Promise<JobPage>;
  /** The job as GET shows it, with what a replay needs. */
  readonly jobRecord: (tenant: string, jobId: string) => Promise<JobRecord | undefined>;
  /** When JetStream stored outcome message `seq` (ms): the HTTP outcome route judges "in time" by it. */
  readonly storedOutcome: OutcomeRouteDeps['storedOutcome'];
  readonly recordedReport: OutcomeRouteDeps['recordedReport'];
  /** The NATS server's `max_payload`, when connected (payloads that could not travel are 413). */
  readonly maxMessageBytes?: () => number | undefined;
  /** The job message stored at a sequence of the jobs stream (a re-admitted attempt takes over its lease). */
  readonly storedJob?: AdmissionServiceDeps['storedJob'];
  readonly registry: Registry;
  readonly readiness: readonly ReadinessCheck[];
  readonly logger?: Logger;
  readonly throttle?: AuthFailureThrottle;
  readonly clientAddress?: (c: Context) => string;
  readonly liveStats?: ConstructorParameters<typeof DecisionRecorder>[1];
  readonly publishTimeoutMs?: number;
  /** The waiting room (mode `queue`, cancel, queued counts). */
  readonly room?: WaitingRoomAccess;
}

/** The producers' HTTP API (CONTRACT §3), plus health, metrics, `/openapi.json` and `/docs`. */
export function createApp(deps: IngressDeps): OpenAPIHono<BlankEnv> {
  const metrics = new IngressMetrics(deps.registry);
  const decisions = new DecisionRecorder(metrics, deps.liveStats);
  const admission = new AdmissionService({
    limiter: deps.limiter,
    js: deps.js,
    names: deps.names,
    natsUp: deps.natsUp,
    ...(deps.storedJob ? { storedJob: deps.storedJob } : {}),
    metrics,
    decisions,
    ...(deps.logger ? { logger: deps.logger } : {}),
    ...(deps.publishTimeoutMs !== undefined ? { publishTimeoutMs: deps.publishTimeoutMs } : {}),
  });
  const auth = tenantAuth({
    keys: deps.keys,
    throttle: deps.throttle ?? new AuthFailureThrottle(),
    policy: deps.policy,
    ...(deps.clientAddress ? { clientAddress: deps.clientAddress } : {}),
  });

  const app = new OpenAPIHono<BlankEnv>();
  app.route('/', healthRoutes({ checks: deps.readiness, registry: deps.registry }));
  app.route('/', jobsRoutes({ policy: deps.policy, admission, metrics, auth, jobView: deps.jobView, idempotencyState: (tenant, key) => deps.limiter.idempotencyState(tenant, key), ...(deps.room ? { room: deps.room } : {}), ...(deps.maxMessageBytes ? { maxMessageBytes: deps.maxMessageBytes } : {}) }));
  app.route('/', listRoutes({ requireTenant: auth.middleware, listJobs: deps.listJobs }));
  const room = deps.room;
  app.route(
    '/',
    replayRoutes({
      requireTenant: auth.middleware,
      policy: deps.policy,
      metrics,
      // a producer replays only its own tenant's job: the route passes its tenant, never undefined
      replay: room === undefined ? undefined : { record: (tenant, jobId) => (tenant === undefined ? Promise.resolve(undefined) : deps.jobRecord(tenant, jobId)), store: room.store, wake: () => room.wake() },
    }),
  );
  app.route('/', usageRoutes({ limiter: deps.limiter, requireTenant: auth.middleware, ...(deps.room ? { room: deps.room.store } : {}) }));
  app.route(
    '/',
    outcomeRoutes({
      limiter: deps.limiter,
      js: deps.js,
      names: deps.names,
      metrics,
      storedOutcome: deps.storedOutcome,
      recordedReport: deps.recordedReport,
      ...(deps.logger ? { logger: deps.logger } : {}),
    }),
  );

  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKey', { type: 'http', scheme: 'bearer', description: 'Tenant API key' });
  app.openAPIRegistry.registerComponent('securitySchemes', 'leaseToken', { type: 'http', scheme: 'bearer', description: 'Lease token from the job message' });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Janus ingress', version: '1.0.0', description: 'Producers submit jobs; Janus admits them when every limit allows (CONTRACT §3).' },
  });
  app.route('/', apiDocsRoutes({ title: 'Janus ingress API' }));

  app.notFound(problemNotFoundFor(app));
  // A 500 is unreachable by input (fuzz-tested): only faults get there.
  app.onError(problemOnError({ logger: deps.logger }));
  return app;
}
