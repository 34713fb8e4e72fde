import type { JetStreamManager } from '@nats-io/jetstream';
import type { FieldError, PolicyDocument } from '@janus/contracts';
import { ensureWorkerConsumer, type NatsConnection, type NatsNames } from '@janus/messaging';
import type { Logger } from '@janus/observability';
import {
  announceConfigChange,
  type EditResult,
  type ExtraCheck,
  type PolicyChange,
  type PolicyStore,
  type Tx,
} from '@janus/policy';
import type { AdminMetrics } from './metrics.js';

export type ChangeResult =
  | { kind: 'applied'; version: number; previousVersion: number; changed: boolean; stored: unknown; diff: PolicyChange[]; document: PolicyDocument }
  | { kind: 'conflict'; currentVersion: number }
  | { kind: 'not_found'; detail: string }
  | { kind: 'invalid'; errors: FieldError[] };

export interface ChangeRequest {
  /** Metric label: dependencies, tenants, job-types, global, policy. */
  resource: string;
  actor: string;
  action: string;
  target: string;
  expectedVersion: number | undefined;
  /** Pure: the edit to apply to the live document (from `@janus/policy` putResource & co). */
  edit: (current: PolicyDocument) => EditResult;
  within?: (tx: Tx, version: number) => Promise<void>;
}

/**
 * Every policy change goes through here: validated and stored as a new version under the store's
 * lock, then announced on `<ns>.config.changed` (every instance reloads), then the worker
 * consumers of added or changed job types are created or updated.
 */
export class PolicyChanges {
  constructor(
    private readonly deps: {
      store: PolicyStore;
      nc: NatsConnection;
      jsm: JetStreamManager;
      names: NatsNames;
      logger: Logger;
      metrics: AdminMetrics;
      /** Refuses documents the running apps could not compile (e.g. the limiter's compiler). */
      extraCheck?: ExtraCheck;
    },
  ) {}

  /** Counts a request that never reached the store (dry runs). */
  count(resource: string, outcome: 'invalid' | 'conflict' | 'dry_run'): void {
    this.deps.metrics.changes.inc({ resource, outcome });
    if (outcome === 'invalid') this.deps.metrics.validationFailures.inc({ resource });
  }

  get extraCheck(): ExtraCheck | undefined {
    return this.deps.extraCheck;
  }

  async change(req: ChangeRequest): Promise<ChangeResult> {
    let stored: unknown;
    const result = await this.deps.store.apply<Exclude<EditResult, { ok: true }>>(
      (current) => {
        const edit = req.edit(current.document);
        if (!edit.ok) return { ok: false, refusal: edit };
        stored = edit.stored;
        return { ok: true, document: edit.document, audit: { actor: req.actor, action: req.action, target: req.target } };
      },
      { ...(req.expectedVersion !== undefined ? { expectedVersion: req.expectedVersion } : {}), ...(req.within ? { within: req.within } : {}) },
    );
    const count = (outcome: string) => this.deps.metrics.changes.inc({ resource: req.resource, outcome });
    if (!result.ok) {
      if (result.reason === 'version_conflict') {
        count('conflict');
        return { kind: 'conflict', currentVersion: result.currentVersion };
      }
      if (result.refusal.status === 404) {
        count('not_found');
        return { kind: 'not_found', detail: result.refusal.detail };
      }
      count('invalid');
      this.deps.metrics.validationFailures.inc({ resource: req.resource });
      return { kind: 'invalid', errors: result.refusal.errors };
    }
    count(result.changed ? 'applied' : 'unchanged');
    if (result.changed) {
      await this.announce(result.policy.version);
      await this.ensureConsumers(result.policy.document, result.diff);
    }
    return {
      kind: 'applied',
      version: result.policy.version,
      previousVersion: result.previousVersion,
      changed: result.changed,
      stored,
      diff: result.diff,
      document: result.policy.document,
    };
  }

  /** Tells every instance to reload now (API keys included). A lost announcement is covered by their poll. */
  async announce(version: number): Promise<void> {
    try {
      await announceConfigChange(this.deps.nc, this.deps.names, version);
    } catch (error) {
      this.deps.metrics.announceFailures.inc();
      this.deps.logger.warn({ err: error, version }, 'could not announce config change; instances will pick it up by polling');
    }
  }

  /** Creates or updates `workers-<jobType>` for the job types a change added or changed (all of them when `diff` is undefined). */
  async ensureConsumers(document: PolicyDocument, diff?: readonly PolicyChange[]): Promise<void> {
    const jobTypes = diff
      ? diff.filter((c) => c.op !== 'remove' && c.path.startsWith('jobTypes.')).map((c) => c.path.slice('jobTypes.'.length))
      : Object.keys(document.jobTypes);
    for (const jobType of jobTypes) {
      const policy = document.jobTypes[jobType];
      if (!policy) continue;
      try {
        await ensureWorkerConsumer(this.deps.jsm, this.deps.names, jobType, policy.timeoutMs);
      } catch (error) {
        this.deps.metrics.consumerFailures.inc();
        this.deps.logger.error({ err: error, jobType }, 'could not ensure the worker consumer of a job type');
      }
    }
  }
}
