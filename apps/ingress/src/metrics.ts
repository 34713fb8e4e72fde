import { Counter, Histogram, type Registry } from 'prom-client';

export type Decision = 'admitted' | 'rejected' | 'duplicate' | 'unavailable' | 'fail_open' | 'queued';

type DecisionLabel = 'decision' | 'reason' | 'job_type';

/**
 * Decision counts kept in plain maps and added to the Prometheus counter when it is collected: a
 * labelled `inc()` hashes (sorts and joins) its labels on every call, once per admitted job.
 */
export class DecisionCounts {
  readonly #pending = new Map<Decision, Map<string, Map<string, number>>>();

  add(decision: Decision, reason: string, jobType: string, count: number): void {
    let byReason = this.#pending.get(decision);
    if (byReason === undefined) this.#pending.set(decision, (byReason = new Map()));
    let byType = byReason.get(reason);
    if (byType === undefined) byReason.set(reason, (byType = new Map()));
    byType.set(jobType, (byType.get(jobType) ?? 0) + count);
  }

  /** Adds what was counted since the last call to `counter`, and forgets it. */
  drainInto(counter: Counter<DecisionLabel>): void {
    for (const [decision, byReason] of this.#pending) {
      for (const [reason, byType] of byReason) {
        for (const [jobType, n] of byType) if (n > 0) counter.inc({ decision, reason, job_type: jobType }, n);
        byType.clear();
      }
    }
  }
}

/** The ingress's own metrics, registered on the app's registry. */
export class IngressMetrics {
  /** Where decisions are counted (see DecisionCounts); `decisions` shows them when scraped. */
  readonly decisionCounts = new DecisionCounts();
  readonly decisions: Counter<DecisionLabel>;
  readonly admissionSeconds: Histogram<'decision'>;
  readonly publishFailures: Counter<'stream'>;
  readonly failOpen: Counter<'job_type'>;
  readonly revocations: Counter<'cause'>;
  readonly takeovers: Counter;
  readonly cancellations: Counter;
  readonly replays: Counter<'job_type'>;
  readonly requestErrors: Counter<'route' | 'status'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const counts = this.decisionCounts;
    this.decisions = new Counter({
      name: 'janus_admission_decisions_total',
      help: 'Admission decisions by decision, reason and job type (one per job)',
      labelNames: ['decision', 'reason', 'job_type'],
      registers,
      collect() {
        counts.drainInto(this);
      },
    });
    this.admissionSeconds = new Histogram({
      name: 'janus_admission_duration_seconds',
      help: 'Time from a parsed request to its answer (admission, publish and ack)',
      labelNames: ['decision'],
      buckets: [0.0005, 0.001, 0.002, 0.004, 0.008, 0.015, 0.03, 0.06, 0.125, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.publishFailures = new Counter({
      name: 'janus_publish_failures_total',
      help: 'JetStream publishes that failed (the admission was revoked)',
      labelNames: ['stream'],
      registers,
    });
    this.failOpen = new Counter({
      name: 'janus_fail_open_admissions_total',
      help: 'Jobs admitted without the limiter because Redis was down and every dependency is failMode: open',
      labelNames: ['job_type'],
      registers,
    });
    this.revocations = new Counter({
      name: 'janus_admission_revocations_total',
      help: 'Admissions revoked after a failed publish',
      labelNames: ['cause'],
      registers,
    });
    this.takeovers = new Counter({
      name: 'janus_admission_takeovers_total',
      help: 'Re-admitted attempts whose job message JetStream already held (an earlier admission of it lapsed unconfirmed): the new admission took over that message\'s lease',
      registers,
    });
    this.cancellations = new Counter({
      name: 'janus_jobs_cancelled_total',
      help: 'Waiting jobs (queued, or retries not yet admitted) cancelled by their producer',
      registers,
    });
    this.replays = new Counter({
      name: 'janus_jobs_replayed_total',
      help: 'Dead jobs replayed by their producer (POST /v1/jobs/{jobId}/replay): each is a new attempt in the waiting room',
      labelNames: ['job_type'],
      registers,
    });
    this.requestErrors = new Counter({
      name: 'janus_ingress_request_errors_total',
      help: 'Submissions refused before any admission decision, by route and status: 401/403 (key), 400 (body or field), 404 (unknown job type), 413 (payload or body size), 415 (not JSON); decisions are janus_admission_decisions_total',
      labelNames: ['route', 'status'],
      registers,
    });
  }
}
