import { Counter, type Registry } from 'prom-client';

export type ChangeOutcome = 'applied' | 'unchanged' | 'invalid' | 'conflict' | 'not_found' | 'dry_run';

export interface AdminMetrics {
  readonly changes: Counter<'resource' | 'outcome'>;
  readonly validationFailures: Counter<'resource'>;
  readonly consumerFailures: Counter;
  readonly announceFailures: Counter;
  readonly pauseDropFailures: Counter;
  readonly authFailures: Counter;
  readonly replays: Counter<'job_type'>;
}

export function createAdminMetrics(registry: Registry): AdminMetrics {
  return {
    changes: new Counter({
      name: 'janus_policy_changes_total',
      help: 'Policy change requests by resource and outcome (applied, unchanged, invalid, conflict, not_found, dry_run)',
      labelNames: ['resource', 'outcome'],
      registers: [registry],
    }),
    validationFailures: new Counter({
      name: 'janus_policy_validation_failures_total',
      help: 'Policy changes refused by validation (422), by resource',
      labelNames: ['resource'],
      registers: [registry],
    }),
    consumerFailures: new Counter({
      name: 'janus_worker_consumer_ensure_failures_total',
      help: 'Job-type worker consumers that could not be created or updated after a policy change',
      registers: [registry],
    }),
    announceFailures: new Counter({
      name: 'janus_config_announce_failures_total',
      help: 'Config-change announcements that could not be published (instances still poll)',
      registers: [registry],
    }),
    pauseDropFailures: new Counter({
      name: 'janus_pause_drop_failures_total',
      help: 'Pauses of removed dependencies or job types that could not be dropped after a policy change (Redis unreachable)',
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'janus_admin_auth_failures_total',
      help: 'Admin API requests refused for a missing, wrong or revoked admin token (401, or 429 while the address is throttled)',
      registers: [registry],
    }),
    // Not janus_jobs_replayed_total (ingress's, producers' replays): a shared registry would see one name twice.
    replays: new Counter({
      name: 'janus_admin_jobs_replayed_total',
      help: 'Dead jobs replayed by an admin (POST /v1/admin/jobs/{jobId}/replay): each is a new attempt in the waiting room',
      labelNames: ['job_type'],
      registers: [registry],
    }),
  };
}
