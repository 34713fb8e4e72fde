import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { FeedbackResult, FeedbackSignal, Limiter } from '@janus/limiter';

export interface SchedulerMetrics {
  readonly outcomes: Counter<'disposition'>;
  readonly retries: Counter<'disposition'>;
  readonly reaped: Counter<'kind'>;
  readonly reapPublishFailures: Counter;
  readonly consumersRecreated: Counter;
  readonly waitingAgain: Counter;
  readonly failOpenAdopted: Counter;
  readonly takeovers: Counter;
  readonly reapHorizonLag: Gauge;
  readonly processing: Histogram;
  readonly startDelay: Histogram<'type'>;
  readonly admissionToOutcome: Histogram<'type' | 'outcome'>;
  readonly dispatched: Counter<'disposition' | 'reason'>;
  readonly roomWait: Histogram;
  readonly notBeforeError: Histogram;
  readonly admittedEarly: Counter;
  readonly roomLeader: Gauge;
}

export function schedulerMetrics(registry: Registry): SchedulerMetrics {
  const buckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];
  return {
    dispatched: new Counter({
      name: 'janus_room_dispatched_total',
      help: 'Waiting-room jobs the dispatcher tried, by what became of them (admitted, rejected: back in the room, cancelled, dead, unavailable, in_progress) and, for a rejection, the limit that refused',
      labelNames: ['disposition', 'reason'],
      registers: [registry],
    }),
    roomWait: new Histogram({
      name: 'janus_room_wait_seconds',
      help: 'Time a job waited in the room until its admission',
      buckets,
      registers: [registry],
    }),
    notBeforeError: new Histogram({
      name: 'janus_room_not_before_error_seconds',
      help: 'Admission time minus the notBefore the producer was told (an admission before it is counted in janus_room_admitted_before_not_before_total instead)',
      buckets: [0, ...buckets],
      registers: [registry],
    }),
    admittedEarly: new Counter({
      name: 'janus_room_admitted_before_not_before_total',
      help: 'Waiting-room jobs admitted before the notBefore their producer was told (the estimate is a lower bound: this should stay 0)',
      registers: [registry],
    }),
    roomLeader: new Gauge({
      name: 'janus_room_leader',
      help: '1 while this instance leads the waiting-room dispatch',
      registers: [registry],
    }),
    outcomes: new Counter({
      name: 'janus_scheduler_outcomes_total',
      help: 'Outcome messages handled, by what became of them (succeeded, retry_scheduled, dead, ignored_*, …)',
      labelNames: ['disposition'],
      registers: [registry],
    }),
    retries: new Counter({
      name: 'janus_scheduler_retries_total',
      help: 'Deliveries of waiting retries, by what became of them (retry_waiting, retry_admitted, retry_rejected, dead, …)',
      labelNames: ['disposition'],
      registers: [registry],
    }),
    reaped: new Counter({
      name: 'janus_leases_reaped_total',
      help: 'Expired leases freed, by kind: attempt (confirmed: reported as timed_out) or unconfirmed (its job message never confirmed in JetStream: released as no attempt)',
      labelNames: ['kind'],
      registers: [registry],
    }),
    waitingAgain: new Counter({
      name: 'janus_leases_waiting_again_total',
      help: 'Leases about to expire whose job message no worker was ever delivered: extended, the job waits again and keeps its attempt (CONTRACT §4)',
      registers: [registry],
    }),
    failOpenAdopted: new Counter({
      name: 'janus_fail_open_adopted_total',
      help: 'Leases of jobs admitted while Redis was unreachable (failMode open) whose records were written once it answered: they run, settle and count in their concurrency pools from then on',
      registers: [registry],
    }),
    takeovers: new Counter({
      name: 'janus_admission_takeovers_total',
      help: 'Re-admitted attempts whose job message JetStream already held (an earlier admission of it lapsed unconfirmed): the new admission took over that message\'s lease',
      registers: [registry],
    }),
    consumersRecreated: new Counter({
      name: 'janus_worker_consumers_recreated_total',
      help: 'workers-<jobType> consumers of job types in the policy that were missing (deleted by hand, say) and were created again',
      registers: [registry],
    }),
    reapPublishFailures: new Counter({
      name: 'janus_reap_publish_failures_total',
      help: 'Expired leases whose timed_out outcome could not be published',
      registers: [registry],
    }),
    reapHorizonLag: new Gauge({
      name: 'janus_reap_horizon_lag_seconds',
      help: 'On the last reap that found expired leases: how far the outcome horizon (every outcome reported before it processed) lagged now; leases that expired after it wait',
      registers: [registry],
    }),
    processing: new Histogram({
      name: 'janus_scheduler_outcome_seconds',
      help: 'Time to handle one outcome message',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    // What people alert on: how long admitted jobs wait for a worker, and until their outcome.
    startDelay: new Histogram({
      name: 'janus_job_start_delay_seconds',
      help: "From admission to a worker's first claim of the lease (the job starts), by job type",
      labelNames: ['type'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    admissionToOutcome: new Histogram({
      name: 'janus_job_admission_to_outcome_seconds',
      help: "From admission to the worker's outcome settling the lease (Redis times), by job type and outcome",
      labelNames: ['type', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
  };
}

const LATENCY_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** What the outcome processor reports after each accepted outcome (OutcomeProcessorDeps.onFeedback). */
export type FeedbackListener = (jobType: string, signal: FeedbackSignal, result: FeedbackResult, dependency: string | undefined) => void;

/**
 * The adaptive protection of dependencies (CONTRACT §2 `adaptive`): throttle signals, circuit
 * transitions and rate decreases counted as outcomes report them, and each dependency's effective
 * ratio and circuit read from Redis on scrape (the state is shared: every instance reports the same
 * values). Returns the listener to give the OutcomeProcessor.
 */
export function dependencyMetrics(
  registry: Registry,
  limiter: Pick<Limiter, 'policy' | 'dependencyState'>,
  /** Also told of each throttle signal (the dashboard's live counters). */
  onThrottle?: (dependency: string) => void,
): FeedbackListener {
  const throttled = new Counter({
    name: 'janus_dependency_throttled_total',
    help: 'Throttled outcomes (the dependency refused for load: HTTP 429, or 503 with Retry-After), by dependency',
    labelNames: ['dependency'],
    registers: [registry],
  });
  const transitions = new Counter({
    name: 'janus_dependency_circuit_transitions_total',
    help: "Outage circuit transitions by dependency and new state: opened, closed (a probe succeeded), reopened (a probe failed)",
    labelNames: ['dependency', 'to'],
    registers: [registry],
  });
  const decreases = new Counter({
    name: 'janus_dependency_rate_decreases_total',
    help: 'Effective-rate decreases after throttling (at most one per cooldown), by dependency',
    labelNames: ['dependency'],
    registers: [registry],
  });

  // Last values read per dependency: a scrape while Redis is unreachable reports them again rather
  // than dropping the series (readiness reports the outage).
  const last = new Map<string, { ratio: number; open: number; inFlight: number }>();
  let reading: Promise<void> | undefined;
  const refresh = () =>
    (reading ??= (async () => {
      const names = Object.keys(limiter.policy.document.dependencies);
      const keep = new Set(names);
      for (const name of last.keys()) if (!keep.has(name)) last.delete(name);
      const states = await Promise.allSettled(names.map((n) => limiter.dependencyState(n)));
      for (const r of states) {
        if (r.status !== 'fulfilled' || r.value === undefined) continue;
        // Half-open admits probes only: for an alert it is still not closed.
        last.set(r.value.dependency, { ratio: r.value.effective.ratio, open: r.value.circuit.state === 'closed' ? 0 : 1, inFlight: r.value.inFlight });
      }
    })().finally(() => {
      // Both gauges of one scrape start collecting together and share this read; the next scrape reads afresh.
      reading = undefined;
    }));
  new Gauge({
    name: 'janus_dependency_effective_ratio',
    help: 'Share of the declared rates a dependency admits now (1: the declared policy; lowered by throttling, never below adaptive.minRatio)',
    labelNames: ['dependency'],
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      for (const [dependency, v] of last) this.set({ dependency }, v.ratio);
    },
  });
  new Gauge({
    name: 'janus_dependency_in_flight',
    help: 'Admitted jobs of a dependency whose outcome is not yet known (live leases), from Redis',
    labelNames: ['dependency'],
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      for (const [dependency, v] of last) this.set({ dependency }, v.inFlight);
    },
  });
  new Gauge({
    name: 'janus_dependency_circuit_open',
    help: "1 while a dependency's outage circuit is open or half-open (only probes are admitted), else 0",
    labelNames: ['dependency'],
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      for (const [dependency, v] of last) this.set({ dependency }, v.open);
    },
  });

  return (jobType, signal, result, named) => {
    for (const t of result.transitions) {
      if (t.transition === 'decreased') decreases.inc({ dependency: t.dependency });
      else transitions.inc({ dependency: t.dependency, to: t.transition });
    }
    if (signal !== 'throttled') return;
    // A throttle concerns one dependency: the one the worker named (if the job type has it), else
    // the job type's first — the limiter's default too.
    const own = limiter.policy.jobType(jobType)?.dependencies.map((d) => d.name) ?? [];
    const dependency = (named !== undefined && own.includes(named) ? named : own[0]) ?? 'unknown';
    throttled.inc({ dependency });
    onThrottle?.(dependency);
  };
}

/**
 * Budget use per tenant with a budget (CONTRACT §2): cost units used in the current window and the
 * window's limit, read from Redis on scrape (shared state: every instance reports the same values).
 */
export function budgetMetrics(registry: Registry, limiter: Pick<Limiter, 'policy' | 'usage'>): void {
  const last = new Map<string, { used: number; limit: number }>();
  let reading: Promise<void> | undefined;
  const refresh = () =>
    (reading ??= (async () => {
      const tenants = Object.entries(limiter.policy.document.tenants).filter(([, t]) => t.budget !== undefined).map(([name]) => name);
      const keep = new Set(tenants);
      for (const name of last.keys()) if (!keep.has(name)) last.delete(name);
      const usage = await Promise.allSettled(tenants.map((t) => limiter.usage(t)));
      for (const r of usage) {
        if (r.status === 'fulfilled' && r.value.budget !== null) last.set(r.value.tenant, { used: r.value.budget.used, limit: r.value.budget.limit });
      }
    })().finally(() => {
      reading = undefined;
    }));
  for (const [name, help, pick] of [
    ['janus_tenant_budget_used', "Cost units a tenant's budget used in its current window (reserved estimates, settled to actual costs)", (v: { used: number }) => v.used],
    ['janus_tenant_budget_limit', "A tenant's budget per window (cost units)", (v: { limit: number }) => v.limit],
  ] as const) {
    new Gauge({
      name,
      help,
      labelNames: ['tenant'],
      registers: [registry],
      async collect() {
        await refresh();
        this.reset();
        for (const [tenant, v] of last) this.set({ tenant }, pick(v));
      },
    });
  }
}
