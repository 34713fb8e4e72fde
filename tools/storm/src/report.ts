import type { MockApiStats, SecondCounts } from './mock-api.js';
import type { Scenario } from './scenario.js';

/** What one pipeline's run produced, besides the API's own counts. */
export interface RunFacts {
  readonly pipeline: 'naive' | 'janus';
  readonly api: MockApiStats;
  /** Jobs the pipeline accepted (Janus: answered 202 or 200; naive: stored in its queue). */
  readonly accepted: number;
  readonly succeeded: number;
  readonly dead: number;
  /** Producers' submissions that were refused (Janus: 429 queue_full and the like; naive: none). */
  readonly refused: number;
  /** Submission round trips (ms): HTTP for Janus, the JetStream publish acknowledgement for naive. */
  readonly admissionLatencyMs: readonly number[];
}

export interface PipelineReport {
  readonly pipeline: 'naive' | 'janus';
  readonly apiCalls: number;
  readonly api429s: number;
  /** 429s ÷ calls from `expect.after429sS` on. */
  readonly ratio429After: number;
  readonly utilization: number;
  readonly jain: number;
  /** Per tenant: successful calls per second in the measured window, and its max-min fair share. */
  readonly perTenant: readonly { readonly tenant: string; readonly okPerSec: number; readonly fairPerSec: number }[];
  /** API calls ÷ distinct jobs calling, during the outages (and a recovery of RECOVERY_S after each); null without outages. */
  readonly retryAmplification: number | null;
  readonly admissionP50Ms: number;
  readonly admissionP99Ms: number;
  readonly accepted: number;
  readonly refused: number;
  readonly succeeded: number;
  readonly dead: number;
  readonly lost: number;
  readonly maxInFlight: number;
  /** Per second: each tenant's successful calls, and all 429s (for the chart). */
  readonly series: { readonly okPerTenant: Readonly<Record<string, readonly number[]>>; readonly throttled: readonly number[] };
}

/** After an outage ends, the API and the pipelines need a moment; these seconds count neither way. */
export const RECOVERY_S = 5;

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Jain's fairness index of x (1: all equal; 1/n: one takes everything). */
export function jainIndex(x: readonly number[]): number {
  if (x.length === 0) return Number.NaN;
  const sum = x.reduce((a, b) => a + b, 0);
  const squares = x.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (x.length * squares);
}

/**
 * Weighted max-min fair shares of `capacity` among demands (water filling): no one gets more than
 * it asks, and what the satisfied leave is shared by weight among the rest.
 */
export function fairShares(capacity: number, demands: readonly { readonly demand: number; readonly weight: number }[]): number[] {
  const share = demands.map(() => 0);
  let left = capacity;
  let open = demands.map((_, i) => i);
  while (open.length > 0 && left > 1e-9) {
    const weights = open.reduce((a, i) => a + demands[i]!.weight, 0);
    const satisfied = open.filter((i) => demands[i]!.demand - share[i]! <= (left * demands[i]!.weight) / weights + 1e-9);
    if (satisfied.length === 0) {
      for (const i of open) share[i]! += (left * demands[i]!.weight) / weights;
      break;
    }
    for (const i of satisfied) {
      left -= demands[i]!.demand - share[i]!;
      share[i] = demands[i]!.demand;
    }
    open = open.filter((i) => !satisfied.includes(i));
  }
  return share;
}

/** Seconds in [warmupS, durationS) outside every outage and its recovery: when the API was there to be used. */
export function measuredSeconds(sc: Scenario): number[] {
  const out: number[] = [];
  for (let s = Math.ceil(sc.warmupS); s < Math.floor(sc.durationS); s++) {
    if (sc.api.outages.some((o) => s + 1 > o.atS && s < o.atS + o.forS + RECOVERY_S)) continue;
    out.push(s);
  }
  return out;
}

const at = (series: readonly SecondCounts[] | undefined, s: number): SecondCounts => series?.[s] ?? { ok: 0, throttled: 0, failed: 0 };

export function report(sc: Scenario, run: RunFacts): PipelineReport {
  const tenants = sc.tenants.map((t) => t.name);
  const seconds = Math.max(0, ...[...run.api.perTenant.values()].map((s) => s.length));
  let apiCalls = 0;
  let api429s = 0;
  let callsAfter = 0;
  let throttledAfter = 0;
  const throttled = Array.from({ length: seconds }, () => 0);
  const okPerTenant: Record<string, number[]> = {};
  for (const [tenant, series] of run.api.perTenant) {
    okPerTenant[tenant] = Array.from({ length: seconds }, (_, s) => at(series, s).ok);
    series.forEach((c, s) => {
      const calls = c.ok + c.throttled + c.failed;
      apiCalls += calls;
      api429s += c.throttled;
      throttled[s]! += c.throttled;
      if (s >= sc.expect.after429sS) {
        callsAfter += calls;
        throttledAfter += c.throttled;
      }
    });
  }

  const window = measuredSeconds(sc);
  const okIn = (tenant: string) => window.reduce((a, s) => a + at(run.api.perTenant.get(tenant), s).ok, 0);
  const okTotal = tenants.reduce((a, t) => a + okIn(t), 0);
  const utilization = window.length === 0 ? Number.NaN : okTotal / (sc.api.ratePerSec * window.length);
  const fair = fairShares(
    sc.api.ratePerSec,
    sc.tenants.map((t) => ({ demand: t.jobsPerSec, weight: t.weight })),
  );
  const perTenant = sc.tenants.map((t, i) => ({ tenant: t.name, okPerSec: window.length ? okIn(t.name) / window.length : 0, fairPerSec: fair[i]! }));
  const jain = jainIndex(perTenant.map((p) => (p.fairPerSec > 0 ? p.okPerSec / p.fairPerSec : 0)));

  let retryAmplification: number | null = null;
  if (sc.api.outages.length > 0) {
    let calls = 0;
    const jobs = new Set<string>();
    for (const o of sc.api.outages) {
      for (let s = Math.floor(o.atS); s < Math.ceil(o.atS + o.forS + RECOVERY_S); s++) {
        for (const t of tenants) {
          const c = at(run.api.perTenant.get(t), s);
          calls += c.ok + c.throttled + c.failed;
        }
        for (const j of run.api.jobsPerSecond[s] ?? []) jobs.add(j);
      }
    }
    retryAmplification = jobs.size === 0 ? 1 : calls / jobs.size;
  }

  return {
    pipeline: run.pipeline,
    apiCalls,
    api429s,
    ratio429After: callsAfter === 0 ? 0 : throttledAfter / callsAfter,
    utilization,
    jain,
    perTenant,
    retryAmplification,
    admissionP50Ms: quantile(run.admissionLatencyMs, 0.5),
    admissionP99Ms: quantile(run.admissionLatencyMs, 0.99),
    accepted: run.accepted,
    refused: run.refused,
    succeeded: run.succeeded,
    dead: run.dead,
    lost: run.accepted - run.succeeded - run.dead,
    maxInFlight: run.api.maxInFlight,
    series: { okPerTenant, throttled },
  };
}

/** Janus's figures against the scenario's `expect`: one line per broken promise (empty: all kept). */
export function violations(sc: Scenario, r: PipelineReport): string[] {
  const e = sc.expect;
  const out: string[] = [];
  if (r.lost > e.maxLost) out.push(`${r.lost} jobs lost (accepted ${r.accepted}, succeeded ${r.succeeded}, dead ${r.dead})`);
  if (r.maxInFlight > sc.api.concurrency) out.push(`the API saw ${r.maxInFlight} calls at once (its limit: ${sc.api.concurrency})`);
  if (e.maxApi429s !== undefined && r.api429s > e.maxApi429s) out.push(`${r.api429s} API 429s (at most ${e.maxApi429s})`);
  if (e.max429Ratio !== undefined && r.ratio429After > e.max429Ratio) out.push(`429s were ${pct(r.ratio429After)} of calls after ${e.after429sS} s (at most ${pct(e.max429Ratio)})`);
  if (e.minUtilization !== undefined && !(r.utilization >= e.minUtilization)) out.push(`utilization ${pct(r.utilization)} (at least ${pct(e.minUtilization)})`);
  if (e.minJain !== undefined && !(r.jain >= e.minJain)) out.push(`Jain's index ${r.jain.toFixed(3)} (at least ${e.minJain})`);
  if (e.maxRetryAmplification !== undefined && r.retryAmplification !== null && r.retryAmplification > e.maxRetryAmplification) {
    out.push(`retry amplification ${r.retryAmplification.toFixed(2)} during the outage (at most ${e.maxRetryAmplification})`);
  }
  return out;
}

export const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : 'n/a');
