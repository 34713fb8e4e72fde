import { compilePolicy, Limiter, type CompiledPolicy } from '@janus/limiter';
import type { VersionedPolicy } from '@janus/contracts';
import type { PolicyHolder } from '@janus/policy';
import { startRuntime, type Runtime, type RuntimeOptions, type WithApiKeys } from './runtime.js';

/** What every app compiles a stored policy into. */
export const compileStoredPolicy = (p: VersionedPolicy): CompiledPolicy => compilePolicy(p.document, p.version);

/**
 * The running policy held by the limiter itself: the watcher swaps versions into the limiter
 * (`setPolicy`), and routes, readiness and admissions all read the limiter's one copy.
 */
export class LimiterPolicy implements PolicyHolder<CompiledPolicy> {
  #loaded = false;

  constructor(private readonly limiter: Limiter) {}

  get loaded(): boolean {
    return this.#loaded;
  }

  get version(): number {
    return this.#loaded ? this.limiter.policy.version : -1;
  }

  get compiled(): CompiledPolicy {
    if (!this.#loaded) throw new Error('policy not loaded yet');
    return this.limiter.policy;
  }

  get policy(): VersionedPolicy {
    const { version, document } = this.compiled;
    return { version, document };
  }

  swap(_policy: VersionedPolicy, compiled: CompiledPolicy): void {
    this.limiter.setPolicy(compiled);
    this.#loaded = true;
  }
}

/** A Runtime whose running policy lives in its limiter. */
export interface LimiterRuntime extends Runtime<CompiledPolicy> {
  readonly limiter: Limiter;
}

export type LimiterRuntimeOptions = Omit<RuntimeOptions<CompiledPolicy>, 'compilePolicy' | 'holder'>;

export function startLimiterRuntime(opts: LimiterRuntimeOptions & { watchApiKeys: true }): Promise<WithApiKeys<LimiterRuntime>>;
export function startLimiterRuntime(opts: LimiterRuntimeOptions): Promise<LimiterRuntime>;
/** Starts a Runtime with a limiter built on its Redis before the policy watcher starts. */
export async function startLimiterRuntime(opts: LimiterRuntimeOptions): Promise<LimiterRuntime> {
  let limiter: Limiter | undefined;
  const runtime = await startRuntime<CompiledPolicy>({
    ...opts,
    compilePolicy: compileStoredPolicy,
    holder: (redis) => {
      limiter = new Limiter({
        redis,
        namespace: opts.settings.namespace,
        signingKey: opts.settings.signingKey,
        replicaAcks: opts.settings.redisWaitReplicas,
        tenantShards: opts.settings.redisTenantShards,
      });
      return new LimiterPolicy(limiter);
    },
  });
  if (!limiter) throw new Error('unreachable: startRuntime builds the holder');
  // A namespace whose state is laid out for another tenant shard count must not start (Redis down:
  // checked again whenever the state is initialised).
  await limiter.checkLayout().catch(async (error: unknown) => {
    if (!(error instanceof RangeError)) return;
    await runtime.close().catch(() => undefined);
    throw error;
  });
  return { ...runtime, limiter };
}
