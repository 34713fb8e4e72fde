import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface SchedulerMetrics {
  readonly outcomes: Counter<'disposition'>;
  readonly retries: Counter<'disposition'>;
  readonly reaped: Counter<'kind'>;
  readonly reapPublishFailures: Counter;
  readonly waitingAgain: Counter;
  readonly reapHorizonLag: Gauge;
  readonly processing: Histogram;
  readonly dispatched: Counter<'disposition'>;
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
      help: 'Waiting-room jobs the dispatcher tried, by what became of them (admitted, rejected: back in the room, cancelled, dead, unavailable, in_progress)',
      labelNames: ['disposition'],
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
  };
}
