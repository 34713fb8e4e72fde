import { createRoute, z } from '@hono/zod-openapi';
import { NAME_PATTERN } from '@janus/contracts';
import { StateLost, StoreUnavailable, type DependencyState, type Limiter } from '@janus/limiter';
import { notFound, unavailable } from '../problem.js';
import { problems, security, subApp } from './common.js';

const iso = (ms: number) => new Date(ms).toISOString();
const IsoTime = z.string().openapi({ format: 'date-time' });

const DeclaredRate = z
  .object({ limit: z.number(), periodMs: z.number(), burst: z.number().optional(), kind: z.enum(['bucket', 'window']).optional() })
  .openapi({ description: 'As declared in the policy' });
const EffectiveRate = z.object({ limit: z.number(), periodMs: z.number() }).openapi({ description: 'ratio × the declared limit' });

/** The 200 body of `GET /v1/dependencies/{name}/state` (CONTRACT §5 v1.1); also each dependency's `state` in the dashboard snapshot. */
export const DependencyStateResponse = z
  .object({
    dependency: z.string(),
    at: IsoTime.openapi({ description: 'When it was read (Redis time)' }),
    adaptive: z.boolean().openapi({ description: '`adaptive.enabled`: false leaves the declared limits in force, whatever workers report' }),
    declared: z.object({ rate: DeclaredRate.nullable(), costRate: DeclaredRate.nullable(), concurrency: z.number().int().nullable() }),
    effective: z.object({
      ratio: z.number().openapi({ description: 'Share of the declared rates admission allows now: minRatio–1; it climbs back to 1 without further throttling' }),
      rate: EffectiveRate.nullable(),
      costRate: EffectiveRate.nullable(),
    }),
    cooldownUntil: IsoTime.nullable().openapi({ description: 'Closed to new admissions until then (a throttled outcome asked for it); null: not cooling down' }),
    paused: z.boolean().openapi({ description: 'Paused by an admin (POST …/pause): admission answers `paused`' }),
    pausedUntil: IsoTime.nullable().openapi({ description: 'When the pause ends; null: until resumed, or not paused' }),
    circuit: z.object({
      state: z.enum(['closed', 'open', 'half_open']),
      probeAt: IsoTime.nullable().openapi({ description: 'When the next probe may be admitted (open), now (half-open), null (closed)' }),
    }),
    inFlight: z.number().int().openapi({ description: 'Admitted jobs whose outcome is not yet known' }),
    retryBudget: z.object({
      windowMs: z.number().int(),
      firstAttempts: z.number().int().openapi({ description: 'First attempts admitted over the last windowMs' }),
      retries: z.number().int().openapi({ description: 'Retries admitted over the last windowMs' }),
      allowed: z.number().int().openapi({ description: 'Retries the budget allows over that window: floor(ratio × firstAttempts + minPerSec × 10)' }),
    }),
  })
  .openapi('DependencyState');
export type DependencyStateResponse = z.infer<typeof DependencyStateResponse>;

/** The limiter's state (ms times) as the API shows it (ISO times). */
export function dependencyStateView(s: DependencyState): DependencyStateResponse {
  return {
    dependency: s.dependency,
    at: iso(s.at),
    adaptive: s.adaptive,
    declared: { rate: s.declared.rate, costRate: s.declared.costRate, concurrency: s.declared.concurrency },
    effective: { ratio: s.effective.ratio, rate: s.effective.rate, costRate: s.effective.costRate },
    cooldownUntil: s.cooldownUntil === null ? null : iso(s.cooldownUntil),
    paused: s.pausedUntil !== null,
    pausedUntil: s.pausedUntil === null || !Number.isFinite(s.pausedUntil) ? null : iso(s.pausedUntil),
    circuit: { state: s.circuit.state, probeAt: s.circuit.probeAt === null ? null : iso(s.circuit.probeAt) },
    inFlight: s.inFlight,
    retryBudget: { ...s.retryBudget },
  };
}

// Unlike `GET /v1/dependencies/{name}` (an unknown or invalid name is simply not found), a name
// that can never be a dependency is 400 here: the path is a live read, and a typo deserves its reason.
const StateParam = z.object({
  // The contracts' Name rule and message (`Name` itself is plain zod: it has no `.openapi`).
  name: z
    .string()
    .regex(NAME_PATTERN, `must match ${NAME_PATTERN.source}`)
    .openapi({ param: { name: 'name', in: 'path' }, example: 'stripe' }),
});

export interface DependencyStateDeps {
  /** The running limiter: it reads the dependency of the policy it holds (the one admission uses). */
  readonly limiter: Pick<Limiter, 'dependencyState'>;
  /** False until the policy watcher loaded a version: before that the limiter knows no dependency. */
  readonly policyLoaded: () => boolean;
}

/** `GET /v1/dependencies/{name}/state`: declared and effective rate, cooldown, circuit, in flight, retry budget. */
export function dependencyStateRoutes(deps: DependencyStateDeps) {
  const app = subApp();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/{name}/state',
      tags: ['dependencies'],
      security,
      summary: "A dependency's live state: declared and effective rate, cooldown, outage circuit, in flight, retry budget",
      request: { params: StateParam },
      responses: {
        200: { description: 'The state now', content: { 'application/json': { schema: DependencyStateResponse } } },
        400: problems[400],
        401: problems[401],
        404: problems[404],
        503: problems[503],
      },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      if (!deps.policyLoaded()) return unavailable('the policy is not loaded yet');
      let state: DependencyState | undefined;
      try {
        state = await deps.limiter.dependencyState(name);
      } catch (error) {
        if (error instanceof StoreUnavailable || error instanceof StateLost) return unavailable(error.message);
        throw error;
      }
      if (state === undefined) return notFound(`dependency "${name}" does not exist`);
      return c.json(dependencyStateView(state), 200, { 'cache-control': 'no-store' });
    },
  );
  return app;
}
