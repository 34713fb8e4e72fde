import type { VersionedPolicy } from '@janus/contracts';

/**
 * The one place an instance's running policy lives. The watcher swaps versions in; everything else
 * (routes, readiness, the limiter's admissions) reads it from here, so there is never a second copy
 * to keep in step.
 */
export interface PolicyHolder<T> {
  /** True once some policy (possibly the empty version 0) is loaded. */
  readonly loaded: boolean;
  /** The running version, -1 before the first load. */
  readonly version: number;
  /** The running compiled policy; throws before the first load. */
  readonly compiled: T;
  /** The running stored policy; throws before the first load. */
  readonly policy: VersionedPolicy;
  /** Makes `compiled` (compiled from `policy`) the running policy, in one step. */
  swap(policy: VersionedPolicy, compiled: T): void;
}

/** A holder of its own, for apps whose compiled policy nobody else holds. */
export class RunningPolicy<T> implements PolicyHolder<T> {
  #current: { readonly policy: VersionedPolicy; readonly compiled: T } | undefined;

  get loaded(): boolean {
    return this.#current !== undefined;
  }

  get version(): number {
    return this.#current?.policy.version ?? -1;
  }

  get compiled(): T {
    if (!this.#current) throw new Error('policy not loaded yet');
    return this.#current.compiled;
  }

  get policy(): VersionedPolicy {
    if (!this.#current) throw new Error('policy not loaded yet');
    return this.#current.policy;
  }

  swap(policy: VersionedPolicy, compiled: T): void {
    this.#current = { policy, compiled };
  }
}
