import { OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { Hono } from 'hono';
import { problemNotFoundFor, problemOnError } from '@janus/http';
import type { Context } from 'hono';
import type { Registry } from 'prom-client';
import type { Limiter } from '@janus/limiter';
import { AcceptedPolicy } from '@janus/contracts';
import { apiDocsRoutes, type AuthFailureThrottle } from '@janus/http';
import { healthRoutes, type Logger, type ReadinessCheck } from '@janus/observability';
import type { AdminTokenOwner, AdminTokenStore, ApiKeyStore, PolicyStore } from '@janus/policy';
import { adminAuth, type NamedAdminTokens } from './auth.js';
import type { PolicyChanges } from './changes.js';
import type { DashboardSnapshot } from './dashboard/snapshot.js';
import type { AdminMetrics } from './metrics.js';
import { CreateAdminTokenBody, adminTokenRoutes } from './routes/admin-tokens.js';
import { auditRoutes } from './routes/audit.js';
import type { AdminEnv } from './routes/common.js';
import { creditsRoutes, type CreditsDeps } from './routes/credits.js';
import { dashboardPages, dashboardRoutes } from './routes/dashboard.js';
import { dependencyRoutes } from './routes/dependencies.js';
import { pauseRoutes, type PauseAudit } from './routes/pause.js';
import { adminJobRoutes, type AdminJobsDeps } from './routes/jobs.js';
import { dependencyStateRoutes } from './routes/dependency-state.js';
import { globalRoutes } from './routes/global.js';
import { jobTypeRoutes } from './routes/job-types.js';
import { CreateKeyBody, keyRoutes } from './routes/keys.js';
import { policyRoutes } from './routes/policy.js';
import { tenantRoutes } from './routes/tenants.js';

export interface AdminAppDeps {
  /** JANUS_ADMIN_TOKEN (or the development one): the admin token named `env`. */
  readonly adminToken: string;
  /** The named admin tokens: the store (`/v1/admin/tokens`) and this instance's cache of the active ones. */
  readonly adminTokens: {
    readonly store: Pick<AdminTokenStore, 'create' | 'revoke' | 'list'>;
    readonly cache: NamedAdminTokens & { refresh(): Promise<void> };
    /** A named token was used: record `lastUsedAt` (at most once a minute per token). */
    readonly used?: (owner: AdminTokenOwner) => void;
  };
  /** Failed-authentication throttle (default: 20 failures per address within 60 s, as ingress). */
  readonly throttle?: AuthFailureThrottle;
  readonly clientAddress?: (c: Context) => string;
  readonly store: PolicyStore;
  readonly keys: ApiKeyStore;
  readonly changes: PolicyChanges;
  /** The running limiter (live dependency state). */
  readonly limiter: Pick<Limiter, 'dependencyState' | 'pause' | 'resume' | 'pauseState'>;
  /** After a resume: wake the waiting room's dispatcher. */
  readonly wakeRoom: () => void;
  /** Records a pause or a resume in the audit log. */
  readonly auditPause: (entry: PauseAudit) => Promise<void>;
  /** Prepaid credits (`/v1/tenants/{id}/credits`, docs/credits.md). */
  readonly credits: Omit<CreditsDeps, 'policyLoaded' | 'toppedUp'>;
  /** Whether a policy version is loaded into the limiter yet. */
  readonly policyLoaded: () => boolean;
  readonly snapshot: () => Promise<DashboardSnapshot>;
  /** The job views and the replay across tenants (`/v1/admin/jobs`). */
  readonly jobs: Omit<AdminJobsDeps, 'replayed'>;
  readonly readiness: readonly ReadinessCheck[];
  readonly registry: Registry;
  readonly metrics: AdminMetrics;
  readonly logger: Logger;
}

/** The admins' REST API (CONTRACT §5), the dashboard, health and metrics, `/openapi.json` and `/docs`. */
export function createApp(deps: AdminAppDeps): Hono {
  const app = new OpenAPIHono<AdminEnv>();
  const resources = { store: deps.store, changes: deps.changes };

  app.route('/', healthRoutes({ checks: deps.readiness, registry: deps.registry }));
  app.route('/', dashboardPages());
  app.route('/', apiDocsRoutes({ title: 'Janus policy admin API' }));
  app.use(
    '/v1/*',
    adminAuth({
      envToken: deps.adminToken,
      tokens: deps.adminTokens.cache,
      metrics: deps.metrics,
      ...(deps.throttle ? { throttle: deps.throttle } : {}),
      ...(deps.clientAddress ? { clientAddress: deps.clientAddress } : {}),
      ...(deps.adminTokens.used ? { used: deps.adminTokens.used } : {}),
    }),
  );
  app.route('/v1/dependencies', dependencyRoutes(resources));
  app.route('/v1/dependencies', dependencyStateRoutes({ limiter: deps.limiter, policyLoaded: deps.policyLoaded }));
  app.route('/v1/dependencies', pauseRoutes('dependency', { limiter: deps.limiter, policyLoaded: deps.policyLoaded, resumed: deps.wakeRoom, audit: deps.auditPause }));
  app.route('/v1/job-types', pauseRoutes('jobType', { limiter: deps.limiter, policyLoaded: deps.policyLoaded, resumed: deps.wakeRoom, audit: deps.auditPause }));
  app.route('/v1/tenants', tenantRoutes(resources));
  app.route('/v1/tenants', keyRoutes({ ...resources, keys: deps.keys }));
  app.route('/v1/tenants', creditsRoutes({ ...deps.credits, policyLoaded: deps.policyLoaded, toppedUp: deps.wakeRoom }));
  app.route('/v1/job-types', jobTypeRoutes(resources));
  app.route('/v1/global', globalRoutes(resources));
  app.route('/v1/policy', policyRoutes(resources));
  app.route('/v1/audit', auditRoutes(resources));
  app.route('/v1/dashboard', dashboardRoutes({ snapshot: deps.snapshot }));
  app.route(
    '/v1/admin/tokens',
    adminTokenRoutes({
      store: deps.adminTokens.store,
      refresh: () => deps.adminTokens.cache.refresh(),
      announce: async () => deps.changes.announce(await deps.store.currentVersion()),
      logger: deps.logger,
    }),
  );
  app.route('/v1/admin/jobs', adminJobRoutes({ ...deps.jobs, replayed: (jobType) => deps.metrics.replays.inc({ job_type: jobType }) }));

  const { DependencyPolicy, TenantPolicy, JobTypePolicy, GlobalPolicy, PolicyDocument } = AcceptedPolicy;
  for (const [name, schema] of Object.entries({ DependencyPolicy, TenantPolicy, JobTypePolicy, GlobalPolicy, PolicyDocument, CreateApiKey: CreateKeyBody, CreateAdminToken: CreateAdminTokenBody })) {
    // The contracts' schemas are plain zod: publish them as JSON Schema (input side: defaults optional),
    // as the API accepts them (with their bounds).
    const { $schema: _dialect, ...jsonSchema } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
    app.openAPIRegistry.registerComponent('schemas', name, jsonSchema as never);
  }
  app.openAPIRegistry.registerComponent('securitySchemes', 'adminToken', { type: 'http', scheme: 'bearer', description: 'JANUS_ADMIN_TOKEN, or a named admin token (`/v1/admin/tokens`)' });
  app.doc31('/openapi.json', { openapi: '3.1.0', info: { title: 'Janus policy admin', version: '1' } });

  const onError = problemOnError({ logger: deps.logger, internalDetail: 'the request failed; nothing was changed by it unless its response said so' });
  app.onError(onError);
  // A plain Hono root, so that the app is served like every other one (`listen(app, …)`).
  const root = new Hono();
  root.route('/', app);
  root.notFound(problemNotFoundFor(root));
  root.onError(onError);
  return root;
}
