import { desc } from 'drizzle-orm';
import type { Cluster, Redis } from 'ioredis';
import { deadLetters, type Database } from '@janus/db';
import { WaitingStore } from '@janus/waiting-room';
import type { DependencyState, Limiter } from '@janus/limiter';
import { NO_DEPENDENCY, readLiveStats, type LiveStats } from '@janus/observability';
import type { PolicyStore } from '@janus/policy';
import { dependencyStateView } from '../routes/dependency-state.js';
import type { AdmissionHistory } from './admission-history.js';
import type { DependencyHistory } from './history.js';

export interface DashboardDeps {
  redis: Redis | Cluster;
  db: Database;
  store: PolicyStore;
  /** The running limiter view (inspect/usage over the live policy). */
  limiter: Pick<Limiter, 'inspect' | 'usage' | 'policy' | 'keys' | 'dependencyState' | 'now'>;
  /** The last minutes of each dependency's effective ratio and in flight (the sparklines). */
  history: DependencyHistory;
  /** The last 15 minutes of admitted and rejected (by reason) per dependency (the charts). */
  admissions: AdmissionHistory;
  /** Rates are averaged over this many complete seconds. Default 3. */
  windowSeconds?: number;
}

const MAX_TENANTS = 100;

/**
 * What the dashboard shows, read fresh each call: live rates (Redis counters ingress keeps),
 * in-flight and headroom (the limiter's state), budgets, queued jobs, dead letters, versions.
 * Each part fails on its own: a part that cannot be read is named in `problems`.
 */
export async function dashboardSnapshot(deps: DashboardDeps) {
  const window = deps.windowSeconds ?? 3;
  const problems: string[] = [];
  const attempt = async <T>(part: string, read: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await read();
    } catch (error) {
      problems.push(`${part}: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
  };
  const doc = deps.limiter.policy.document;
  const tenantIds = Object.keys(doc.tenants).slice(0, MAX_TENANTS);
  // The adaptive state of the same dependencies the history samples (one Redis script call each).
  const stateNames = deps.history.names();
  const [stats, inspect, states, usages, queued, dead, versions, audit] = await Promise.all([
    attempt('live stats', () => readLiveStats(deps.redis, deps.limiter.keys, window, { clock: () => deps.limiter.now() })),
    attempt('limiter', () => deps.limiter.inspect()),
    attempt('dependency state', async () => {
      const read = await Promise.all(stateNames.map((n) => deps.limiter.dependencyState(n)));
      return new Map(read.filter((s): s is DependencyState => s !== undefined).map((s) => [s.dependency, s]));
    }),
    attempt('tenant usage', () => Promise.all(tenantIds.map((t) => deps.limiter.usage(t)))),
    attempt('queued jobs', () => new WaitingStore(deps.db).waitingAll()),
    attempt('dead letters', () =>
      deps.db
        .select({ jobId: deadLetters.jobId, type: deadLetters.type, tenant: deadLetters.tenant, attempts: deadLetters.attempts, lastOutcome: deadLetters.lastOutcome, error: deadLetters.error, deadAt: deadLetters.deadAt })
        .from(deadLetters)
        .orderBy(desc(deadLetters.deadAt))
        .limit(10),
    ),
    attempt('policy versions', () => deps.store.versions(10)),
    attempt('audit', () => deps.store.audit({ limit: 10 })),
  ]);

  const rate = (n: number) => Math.round((n / window) * 10) / 10;
  const live = (dep: string) => liveFor(stats, dep, rate);
  // The waiting room, per tenant: jobs waiting and when the oldest arrived.
  const queuedBy = new Map<string, { n: number; oldest: number }>();
  for (const r of queued ?? []) {
    const q = queuedBy.get(r.tenant) ?? { n: 0, oldest: Infinity };
    queuedBy.set(r.tenant, { n: q.n + r.n, oldest: Math.min(q.oldest, r.oldest.getTime()) });
  }
  const now = Date.now();
  return {
    at: new Date().toISOString(),
    namespace: deps.limiter.keys.namespace,
    windowSeconds: window,
    /** The sparklines' sampling: `dependencies[].history` holds one `[at ms, ratio, inFlight]` per `everyMs`, over `windowMs`. */
    history: { everyMs: deps.history.everyMs, windowMs: deps.history.windowMs },
    /** The charts: `dependencies[].admissions` holds one `[start ms, admitted, { reason: rejected }]` per bucket (counts over `bucketSeconds`), over `windowMs`. */
    admissions: { bucketSeconds: deps.admissions.bucketSeconds, windowMs: deps.admissions.windowMs },
    policy: {
      version: deps.limiter.policy.version,
      history: (versions ?? []).map((v) => ({ version: v.version, createdAt: v.createdAt.toISOString(), createdBy: v.createdBy })),
      recentChanges: (audit ?? []).map((a) => ({ id: a.id, at: a.at.toISOString(), actor: a.actor, action: a.action, target: a.target, fromVersion: a.fromVersion, toVersion: a.toVersion })),
    },
    dependencies: Object.entries(doc.dependencies).map(([name, p]) => {
      const state = inspect?.dependencies[name];
      const adaptive = states?.get(name);
      return {
        name,
        ...live(name),
        inFlight: state?.inFlight ?? null,
        concurrency: p.concurrency ?? null,
        rate: state?.rate ?? null,
        costRate: state?.costRate ?? null,
        // What GET /v1/dependencies/{name}/state answers; null when it could not be read.
        state: adaptive ? dependencyStateView(adaptive) : null,
        history: deps.history.samples(name),
        admissions: deps.admissions.series(name),
      };
    }),
    unattributed: live(NO_DEPENDENCY),
    global: inspect?.global ?? null,
    tenants: tenantIds.map((id, i) => {
      const u = usages?.[i];
      return {
        id,
        weight: doc.tenants[id]?.weight ?? 1,
        budget: u?.budget ? { ...u.budget, resetsAt: new Date(u.budget.resetsAt).toISOString() } : null,
        // prepaid credits (docs/credits.md); null: no credit account
        credits: u?.credits ?? null,
        inFlight: u?.inFlight ?? null,
        queued: queued ? (queuedBy.get(id)?.n ?? 0) : null,
        oldestWaitingSeconds: queuedBy.has(id) ? Math.round((now - queuedBy.get(id)!.oldest) / 100) / 10 : null,
      };
    }),
    deadLetters: (dead ?? []).map((d) => ({ ...d, deadAt: d.deadAt.toISOString() })),
    problems,
  };
}

function liveFor(stats: LiveStats | undefined, dep: string, rate: (n: number) => number) {
  const s = stats?.dependencies[dep];
  return {
    admittedPerSec: stats ? rate(s?.admitted ?? 0) : null,
    rejectedPerSec: stats ? Object.fromEntries(Object.entries(s?.rejected ?? {}).map(([reason, n]) => [reason, rate(n)])) : null,
  };
}

export type DashboardSnapshot = Awaited<ReturnType<typeof dashboardSnapshot>>;
