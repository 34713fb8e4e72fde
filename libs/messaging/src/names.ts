/**
 * Every NATS stream, subject and consumer name of CONTRACT §4, derived from the namespace.
 * Apps never build these strings themselves.
 */
export interface NatsNames {
  readonly namespace: string;
  readonly streams: {
    readonly jobs: string;
    readonly outcomes: string;
    readonly dead: string;
    readonly ledger: string;
    readonly applied: string;
    /** Retries waiting for their time (work-queue: a message goes when its attempt is admitted or dead). */
    readonly retries: string;
    /** Lease extensions the scheduler granted, kept for the persister (what a state rebuild reads). */
    readonly extensions: string;
  };
  readonly subjects: {
    readonly job: (jobType: string) => string;
    readonly outcome: (jobType: string) => string;
    readonly dead: (jobType: string) => string;
    readonly ledger: (tenant: string) => string;
    /** Outcomes the scheduler accepted: what job status derives from. */
    readonly applied: (jobType: string) => string;
    readonly allApplied: string;
    /** A retry the scheduler decided, waiting for its time: `<ns>.retries.<jobType>`. */
    readonly retry: (jobType: string) => string;
    readonly allRetries: string;
    /** A lease extension the scheduler granted: `<ns>.extensions.<jobType>`. */
    readonly extension: (jobType: string) => string;
    readonly allExtensions: string;
    /** Core NATS (no stream): capacity may have freed or a job joined the waiting room — the dispatcher looks again. */
    readonly roomWake: string;
    readonly allJobs: string;
    readonly allOutcomes: string;
    readonly allDead: string;
    readonly allLedger: string;
    readonly configChanged: string;
    /** Core NATS request/reply: a worker asks the scheduler to extend its lease. */
    readonly leaseExtend: string;
  };
  readonly consumers: {
    /** The durable pull consumer workers bind to: `workers-<jobType>`. */
    readonly workers: (jobType: string) => string;
    readonly persisterJobs: string;
    readonly persisterOutcomes: string;
    readonly persisterDead: string;
    readonly persisterLedger: string;
    readonly persisterApplied: string;
    readonly persisterExtensions: string;
    readonly schedulerOutcomes: string;
    /** The scheduler instances' shared consumer of waiting retries. */
    readonly schedulerRetries: string;
  };
}

export function natsNames(namespace: string): NatsNames {
  const s = namespace;
  const S = namespace.toUpperCase();
  return Object.freeze({
    namespace,
    streams: Object.freeze({ jobs: `${S}_JOBS`, outcomes: `${S}_OUTCOMES`, dead: `${S}_DEAD`, ledger: `${S}_LEDGER`, applied: `${S}_APPLIED`, retries: `${S}_RETRIES`, extensions: `${S}_EXTENSIONS` }),
    subjects: Object.freeze({
      job: (jobType: string) => `${s}.jobs.${jobType}`,
      outcome: (jobType: string) => `${s}.outcomes.${jobType}`,
      dead: (jobType: string) => `${s}.dead.${jobType}`,
      ledger: (tenant: string) => `${s}.ledger.${tenant}`,
      applied: (jobType: string) => `${s}.applied.${jobType}`,
      allApplied: `${s}.applied.>`,
      retry: (jobType: string) => `${s}.retries.${jobType}`,
      allRetries: `${s}.retries.>`,
      extension: (jobType: string) => `${s}.extensions.${jobType}`,
      allExtensions: `${s}.extensions.>`,
      roomWake: `${s}.room.wake`,
      allJobs: `${s}.jobs.>`,
      allOutcomes: `${s}.outcomes.>`,
      allDead: `${s}.dead.>`,
      allLedger: `${s}.ledger.>`,
      configChanged: `${s}.config.changed`,
      leaseExtend: `${s}.leases.extend`,
    }),
    consumers: Object.freeze({
      workers: (jobType: string) => `workers-${jobType}`,
      persisterJobs: 'persister-jobs',
      persisterOutcomes: 'persister-outcomes',
      persisterDead: 'persister-dead',
      persisterLedger: 'persister-ledger',
      persisterApplied: 'persister-applied',
      persisterExtensions: 'persister-extensions',
      schedulerOutcomes: 'scheduler-outcomes',
      schedulerRetries: 'scheduler-retries',
    }),
  });
}
