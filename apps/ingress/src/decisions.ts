import type { Decision, IngressMetrics } from './metrics.js';

/**
 * Every admission decision goes through `record`: the Prometheus counter, and the dashboard's
 * live stats (admitted/s, rejected/s by reason).
 */
export class DecisionRecorder {
  constructor(
    private readonly metrics: IngressMetrics,
    /** The live-stats writer (`recordDecision` of @janus/observability, with the limiter's Keys). */
    private readonly live?: (decision: Decision, reason: string, jobType: string, count: number) => void,
  ) {}

  record(decision: Decision, reason: string, jobType: string, count: number): void {
    this.metrics.decisionCounts.add(decision, reason, jobType, count);
    // WIRE-LIVE-STATS: the single call site for the dashboard's live stats.
    this.live?.(decision, reason, jobType, count);
  }
}

type Dependency = { readonly name: string };

type LiveDecisionInput =
  | { readonly outcome: 'admitted'; readonly dependencies: readonly string[] }
  | { readonly outcome: 'rejected'; readonly reason: string; readonly dependencies: readonly string[] };

/**
 * Buffers live-stats increments in memory and writes them every `intervalMs` (one Redis pipeline
 * per decision kind instead of one per request on the hot path). A failed write is dropped: live
 * stats are a dashboard aid, never a reason to fail an admission.
 */
export class LiveStatsBuffer {
  // "admitted" or "rejected|<reason>" → the dependency names joined → count. Names and key are
  // derived once per dependency list (the compiled policy's own array), not per admission.
  private pending = new Map<string, Map<string, { decision: LiveDecisionInput; count: number }>>();
  private readonly named = new WeakMap<readonly Dependency[], { readonly names: readonly string[]; readonly key: string }>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly write: (decision: LiveDecisionInput, count: number) => Promise<void>,
    /** The job type's dependency list as the running policy holds it; undefined for an unknown type. */
    private readonly dependenciesOf: (jobType: string) => readonly Dependency[] | undefined,
    intervalMs = 250,
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** The `live` callback of DecisionRecorder: admitted (incl. fail-open) and limit rejections only. */
  readonly record = (decision: Decision, reason: string, jobType: string, count: number): void => {
    if (decision !== 'admitted' && decision !== 'fail_open' && decision !== 'rejected') return;
    const list = this.dependenciesOf(jobType);
    if (list === undefined) return; // unknown job type: not a limit decision
    let named = this.named.get(list);
    if (named === undefined) {
      const names = list.map((d) => d.name);
      this.named.set(list, (named = { names, key: names.join(',') }));
    }
    const { names: dependencies, key } = named;
    const rejected = decision === 'rejected';
    const group = rejected ? `rejected|${reason}` : 'admitted';
    let byDependencies = this.pending.get(group);
    if (byDependencies === undefined) this.pending.set(group, (byDependencies = new Map()));
    const entry = byDependencies.get(key);
    if (entry) entry.count += count;
    else byDependencies.set(key, { decision: rejected ? { outcome: 'rejected', reason, dependencies } : { outcome: 'admitted', dependencies }, count });
  };

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const writes: Promise<void>[] = [];
    for (const byDependencies of batch.values()) for (const e of byDependencies.values()) writes.push(this.write(e.decision, e.count).catch(() => undefined));
    await Promise.all(writes);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
