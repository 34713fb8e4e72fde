import type { JetStreamManager } from '@nats-io/jetstream';
import type { FieldError, PolicyDocument } from '@janus/contracts';
import type { Limiter, PauseTarget } from '@janus/limiter';
import { ensureWorkerConsumer, type NatsConnection, type NatsNames } from '@janus/messaging';
import type { Logger } from '@janus/observability';
import {
  ApiKeyStore,
  announceConfigChange,
  diffPolicies,
  type EditResult,
  type ExtraCheck,
  type PolicyChange,
  type PolicyStore,
  type Within,
} from '@janus/policy';
import type { AdminMetrics } from './metrics.js';

export type ChangeResult =
  | { kind: 'applied'; version: number; previousVersion: number; changed: boolean; stored: unknown; diff: PolicyChange[]; document: PolicyDocument }
  /** A dry run (`?dryRun=true`): what the change would do to the policy at `version`; nothing stored. */
  | { kind: 'preview'; version: number; changed: boolean; diff: PolicyChange[] }
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
  /** More work in the change's transaction (after the removed tenants' keys are revoked). */
  within?: Within;
}

/** The names a change removed from a section (`dependencies`, `tenants`, `jobTypes`). */
function removed(diff: readonly PolicyChange[], section: 'dependencies' | 'tenants' | 'jobTypes'): string[] {
  const prefix = `${section}.`;
  return diff.filter((c) => c.op === 'remove' && c.path.startsWith(prefix)).map((c) => c.path.slice(prefix.length));
}

/** Every tenant a change removes loses its API keys in the change's own transaction, however it was removed. */
const revokeRemovedTenantsKeys: Within = async (tx, _version, diff) => {
  for (const tenant of removed(diff, 'tenants')) await ApiKeyStore.revokeTenantKeys(tx, tenant);
};

/**
 * Every policy change goes through here: validated and stored as a new version under the store's
 * lock — the keys of every tenant it removes revoked in the same transaction (as DELETE and PUT
 * /v1/policy alike remove tenants) — then announced on `<ns>.config.changed` (every instance
 * reloads), then the pauses of the dependencies and job types it removed are dropped (one created
 * again under the name starts unpaused), then the worker consumers of added or changed job types
 * are created or updated.
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
      /** Drops the pause (in Redis) of a removed dependency or job type. */
      pauses: Pick<Limiter, 'dropPause'>;
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

  /** A dry run of `req`: validated against the current policy and diffed; nothing is stored or announced. */
  async preview(req: ChangeRequest): Promise<ChangeResult> {
    const current = await this.deps.store.current();
    if (req.expectedVersion !== undefined && req.expectedVersion !== current.version) {
      this.count(req.resource, 'conflict');
      return { kind: 'conflict', currentVersion: current.version };
    }
    const edit = req.edit(current.document);
    if (!edit.ok) {
      if (edit.status === 404) return { kind: 'not_found', detail: edit.detail };
      this.count(req.resource, 'invalid');
      return { kind: 'invalid', errors: edit.errors };
    }
    this.count(req.resource, 'dry_run');
    const diff = diffPolicies(current.document, edit.document);
    return { kind: 'preview', version: current.version, changed: diff.length > 0, diff };
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
      {
        ...(req.expectedVersion !== undefined ? { expectedVersion: req.expectedVersion } : {}),
        within: async (tx, version, diff) => {
          await revokeRemovedTenantsKeys(tx, version, diff);
          await req.within?.(tx, version, diff);
        },
      },
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
      await this.dropPauses(result.diff);
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

  /**
   * Drops the pauses of the dependencies and job types a stored change removed. The change stands
   * if Redis cannot be reached (logged and counted): such a pause then outlives its target, and
   * holds one created again under its name until resumed.
   */
  private async dropPauses(diff: readonly PolicyChange[]): Promise<void> {
    const targets: PauseTarget[] = [...removed(diff, 'dependencies').map((dependency) => ({ dependency })), ...removed(diff, 'jobTypes').map((jobType) => ({ jobType }))];
    for (const target of targets) {
      try {
        await this.deps.pauses.dropPause(target);
      } catch (error) {
        this.deps.metrics.pauseDropFailures.inc();
        this.deps.logger.error({ err: error, ...target }, 'could not drop the pause of a removed dependency or job type; it holds one created again under the name until resumed');
      }
    }
  }

  /** Creates or updates `workers-<jobType>` for the job types a change added or changed (all of them when `diff` is undefined). */
  async ensureConsumers(document: PolicyDocument, diff?: readonly PolicyChange[]): Promise<void> {
    const jobTypes = diff
      ? diff.filter((c) => c.op !== 'remove' && c.path.startsWith('jobTypes.')).map((c) => c.path.slice('jobTypes.'.length))
      : Object.keys(document.jobTypes);
    for (const jobType of jobTypes) {
      const policy = Object.hasOwn(document.jobTypes, jobType) ? document.jobTypes[jobType] : undefined;
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
