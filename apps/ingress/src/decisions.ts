import type { Decision, IngressMetrics } from './metrics.js';

/**
 * Every admission decision goes through `record`: the Prometheus counter, and the dashboard's
 * live stats (admitted/s, rejected/s by reason).
 */
export class DecisionRecorder {
  constructor(
    private readonly metrics: IngressMetrics,
    /** The live-stats writer (`recordDecision(redis, ns, …)` of @janus/observability) once it exists. */
    private readonly live?: (decision: Decision, reason: string, jobType: string, count: number) => void,
  ) {}

  record(decision: Decision, reason: string, jobType: string, count: number): void {
    this.metrics.decisions.inc({ decision, reason, job_type: jobType }, count);
    // WIRE-LIVE-STATS: the single call site for the dashboard's live stats.
    this.live?.(decision, reason, jobType, count);
  }
}
