import type { Settings } from '@janus/config';
import { auditLog, creditLedger } from '@janus/db';
import { and, eq, sql } from 'drizzle-orm';
import { compilePolicy, creditLedgerMessage, topUpEntryId, type Limiter } from '@janus/limiter';
import { publishJson } from '@janus/messaging';
import type { Logger } from '@janus/observability';
import { AdminTokenCache, AdminTokenStore, type ExtraCheck } from '@janus/policy';
import { startLimiterRuntime, type LimiterRuntime, type Startup } from '@janus/runtime';
import type { Hono } from 'hono';
import { getJobRecord, listJobRecords, reconcileCredits } from '@janus/event-store';
import { NEW_JOB_WAKE, WaitingStore } from '@janus/waiting-room';
import { resolveAdminToken } from './admin-token.js';
import { createApp, type AdminAppDeps } from './app.js';
import { PolicyChanges } from './changes.js';
import { AdmissionHistory, type AdmissionHistoryOptions } from './dashboard/admission-history.js';
import { DependencyHistory, type DependencyHistoryOptions } from './dashboard/history.js';
import { dashboardSnapshot } from './dashboard/snapshot.js';
import { createAdminMetrics, type AdminMetrics } from './metrics.js';

/** Refuses a document the running apps could not compile (their watchers would keep the old version). */
export const compileCheck: ExtraCheck = (doc) => {
  try {
    compilePolicy(doc, 0);
    return [];
  } catch (error) {
    return [{ path: '(body)', message: `the limiter cannot compile this policy: ${error instanceof Error ? error.message : String(error)}` }];
  }
};

export interface PolicyAdmin {
  readonly app: Hono;
  readonly runtime: LimiterRuntime;
  /** The read-only limiter view of the dashboard; it holds the running policy. */
  readonly limiter: Limiter;
  readonly changes: PolicyChanges;
  readonly metrics: AdminMetrics;
  /** The dashboard's recent dependency states (sampled every few seconds while the app runs). */
  readonly history: DependencyHistory;
  /** The dashboard's admission charts (the live counters, read every few seconds while the app runs). */
  readonly admissions: AdmissionHistory;
  /** The token admins must present: JANUS_ADMIN_TOKEN, or one generated in development. */
  readonly adminToken: { readonly token: string; readonly generated: boolean };
  /** The named admin tokens this instance accepts (refreshed on every config event and poll). */
  readonly adminTokens: AdminTokenCache;
  close(): Promise<void>;
}

export interface PolicyAdminOptions {
  logger?: Logger;
  /** main.ts's: waits for NATS and PostgreSQL while serving health (see Startup). */
  startup?: Startup;
  dbPoolSize?: number;
  dashboardWindowSeconds?: number;
  /** Sampling of the dashboard's dependency sparklines (default: every 5 s, over 10 min). */
  dependencyHistory?: DependencyHistoryOptions;
  /** Sampling of the dashboard's admission charts (default: every 5 s into 10 s buckets, over 15 min). */
  admissionHistory?: AdmissionHistoryOptions;
  /** Failed-authentication throttle and client address (tests; default as ingress). */
  throttle?: AdminAppDeps['throttle'];
  clientAddress?: AdminAppDeps['clientAddress'];
}

/**
 * Starts policy-admin: resolves the admin token (throws ConfigError without one outside
 * development), starts the runtime (its limiter is the dashboard's view and holds the running
 * policy), then the change pipeline and the app. Used by main.ts and by the tests.
 */
export async function startPolicyAdmin(settings: Settings, opts: PolicyAdminOptions = {}): Promise<PolicyAdmin> {
  const adminToken = resolveAdminToken(settings);
  // Built on the runtime's pool, which exists only once the runtime starts: the first config event
  // (the watcher's load at start) creates the cache, every later event and poll refreshes it.
  let tokenStore: AdminTokenStore | undefined;
  let tokenCache: AdminTokenCache | undefined;
  const rt = await startLimiterRuntime({
    app: 'policy-admin',
    settings,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.startup ? { startup: opts.startup } : {}),
    ...(opts.dbPoolSize !== undefined ? { dbPoolSize: opts.dbPoolSize } : {}),
    onConfigEvent: ({ db }) => {
      tokenStore ??= new AdminTokenStore(db.db);
      tokenCache ??= new AdminTokenCache(tokenStore);
      return tokenCache.refresh();
    },
  });
  if (!tokenStore || !tokenCache) throw new Error('unreachable: the policy watcher calls onConfigEvent at start');
  const tokens = { store: tokenStore, cache: tokenCache };
  const metrics = createAdminMetrics(rt.registry);
  const changes = new PolicyChanges({ store: rt.policyStore, nc: rt.nc, jsm: rt.jsm, names: rt.names, logger: rt.logger, metrics, extraCheck: compileCheck, pauses: rt.limiter });
  if (rt.policy.loaded) {
    // Idempotent: covers a previous instance that stored a job type but stopped before its consumer existed.
    void changes.ensureConsumers(rt.policy.policy.document);
  }
  const policyLoaded = () => rt.policy.loaded;
  const history = new DependencyHistory({ limiter: rt.limiter, policyLoaded }, opts.dependencyHistory);
  history.start();
  const admissions = new AdmissionHistory({ redis: rt.redis, keys: rt.limiter.keys, clock: () => rt.limiter.now() }, opts.admissionHistory);
  admissions.start();
  const app = createApp({
    adminToken: adminToken.token,
    adminTokens: {
      ...tokens,
      // A hint for the list, written at most once a minute per token: a failure only delays it.
      used: (owner) => {
        tokens.store.touch([owner.tokenId]).catch((error: unknown) => rt.logger.warn({ err: error, tokenName: owner.name }, 'could not record an admin token as used'));
      },
    },
    ...(opts.throttle ? { throttle: opts.throttle } : {}),
    ...(opts.clientAddress ? { clientAddress: opts.clientAddress } : {}),
    limiter: rt.limiter,
    credits: {
      limiter: rt.limiter,
      tenantExists: async (tenant) => Object.hasOwn((await rt.policyStore.current()).document.tenants, tenant),
      recordedTopUp: async (tenant, key) => (await rt.db.db.select({ amount: creditLedger.amount }).from(creditLedger).where(eq(creditLedger.entryId, topUpEntryId(tenant, key))).limit(1))[0]?.amount,
      publish: async (entry) => {
        await publishJson(rt.js, rt.names.subjects.ledger(entry.tenant), creditLedgerMessage(entry), entry.id);
      },
      audit: async (actor, entry) => {
        const target = `tenants/${entry.tenant}/credits`;
        const done = await rt.db.db
          .select({ id: auditLog.id })
          .from(auditLog)
          .where(and(eq(auditLog.action, 'credits.topup'), eq(auditLog.target, target), sql`${auditLog.diff} @> ${JSON.stringify([{ value: { entryId: entry.id } }])}::jsonb`))
          .limit(1);
        if (done.length > 0) return;
        const version = await rt.policyStore.currentVersion();
        await rt.db.db.insert(auditLog).values({
          actor,
          action: 'credits.topup',
          target,
          fromVersion: version,
          toVersion: version,
          diff: [{ op: 'add', path: `tenants.${entry.tenant}.credits`, value: { amount: entry.amount, entryId: entry.id } }],
        });
      },
      reconcile: (tenant) => reconcileCredits({ db: rt.db.db, tenant, live: () => rt.limiter.credits.snapshot(tenant) }),
    },
    policyLoaded,
    // capacity may be free: not NEW_JOB_WAKE (no new rows), so the dispatcher lifts its blocks
    wakeRoom: () => rt.nc.publish(rt.names.subjects.roomWake, ''),
    // operational state, not a policy version: recorded at the current version, as keys and credits are
    auditPause: async ({ actor, action, target, state }) => {
      const version = await rt.policyStore.currentVersion();
      await rt.db.db.insert(auditLog).values({
        actor,
        action,
        target,
        fromVersion: version,
        toVersion: version,
        diff: [{ op: 'replace', path: target.replace('/', '.') + '.pause', value: state }],
      });
    },
    store: rt.policyStore,
    keys: rt.apiKeyStore,
    changes,
    jobs: {
      list: (tenant, query) => listJobRecords(rt.db.db, tenant, query),
      get: (jobId) => getJobRecord(rt.db.db, undefined, jobId),
      policy: () => (rt.policy.loaded ? rt.limiter.policy : undefined),
      replay: {
        record: (tenant, jobId) => getJobRecord(rt.db.db, tenant, jobId),
        store: new WaitingStore(rt.db.db),
        // A new row in the room: the retry-scheduler's dispatcher loads it at once (as after a producer's replay).
        wake: () => {
          if (!rt.nc.isClosed()) rt.nc.publish(rt.names.subjects.roomWake, NEW_JOB_WAKE);
        },
      },
    },
    snapshot: () =>
      dashboardSnapshot({
        redis: rt.redis,
        db: rt.db.db,
        store: rt.policyStore,
        limiter: rt.limiter,
        history,
        admissions,
        ...(opts.dashboardWindowSeconds !== undefined ? { windowSeconds: opts.dashboardWindowSeconds } : {}),
      }),
    readiness: [...rt.readiness, { name: 'admin-tokens', check: () => tokens.cache.loaded }],
    registry: rt.registry,
    metrics,
    logger: rt.logger,
  });
  return {
    app,
    runtime: rt,
    limiter: rt.limiter,
    changes,
    metrics,
    history,
    admissions,
    adminToken,
    adminTokens: tokens.cache,
    close: async () => {
      await Promise.all([history.stop(), admissions.stop()]);
      await rt.close();
    },
  };
}
