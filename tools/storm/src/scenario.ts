import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/**
 * A storm scenario (tools/storm/scenarios/<name>.json): the external API, the tenants and their
 * demand, the job type, the workers, and what Janus is told about the API. Both pipelines run it
 * with the same producers, the same worker code and a fresh mock API.
 */
export const Scenario = z.strictObject({
  name: z.string().min(1),
  description: z.string().default(''),
  /** Seconds the producers submit. */
  durationS: z.number().positive(),
  /** After the producers stop, at most this long for the backlog to drain (jobs not finished by then count as lost). */
  drainS: z.number().positive().default(120),
  /** The first seconds are left out of utilization and fairness (queues filling, JIT). */
  warmupS: z.number().nonnegative().default(3),
  api: z.strictObject({
    ratePerSec: z.number().positive(),
    burst: z.number().positive().optional(),
    concurrency: z.number().int().positive(),
    latencyMs: z.number().nonnegative(),
    failRate: z.number().min(0).max(1).default(0),
    outages: z.array(z.strictObject({ atS: z.number().nonnegative(), forS: z.number().positive() })).default([]),
  }),
  /** What the Janus policy declares, as a multiple of the API's real rate (1: truthful; 2: over-declared). */
  declaredRateFactor: z.number().positive().default(1),
  tenants: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[a-z][a-z0-9_-]{0,30}$/),
        weight: z.number().positive().default(1),
        /** Jobs per second submitted. */
        jobsPerSec: z.number().positive(),
        /** steady: evenly; bursts: the same mean, sent in one burst every `burstEveryS`. */
        profile: z.enum(['steady', 'bursts']).default('steady'),
        burstEveryS: z.number().positive().default(5),
        /** Concurrent producer connections. */
        connections: z.number().int().positive().default(2),
      }),
    )
    .min(1),
  job: z
    .strictObject({
      cost: z.number().int().positive().default(1),
      maxAttempts: z.number().int().positive().default(6),
      baseDelayMs: z.number().int().positive().default(500),
      maxDelayMs: z.number().int().positive().default(10_000),
      timeoutMs: z.number().int().positive().default(10_000),
    })
    .prefault({}),
  /** Jobs handled at once, by all workers together (the same for both pipelines). */
  workers: z.strictObject({ concurrency: z.number().int().positive() }),
  /** Pass/fail thresholds checked for Janus (the naive pipeline's figures are reported, never judged). */
  expect: z
    .strictObject({
      maxApi429s: z.number().int().nonnegative().optional(),
      /** 429s as a fraction of calls, counted from `after429sS` seconds on. */
      max429Ratio: z.number().min(0).max(1).optional(),
      after429sS: z.number().nonnegative().default(10),
      minUtilization: z.number().min(0).max(1).optional(),
      minJain: z.number().min(0).max(1).optional(),
      maxRetryAmplification: z.number().positive().optional(),
      maxLost: z.number().int().nonnegative().default(0),
    })
    .prefault({}),
});
export type Scenario = z.infer<typeof Scenario>;

export const SCENARIO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../scenarios');

/** A scenario by name (scenarios/<name>.json) or path, validated; a bad file throws naming the field. */
export function loadScenario(nameOrPath: string): Scenario {
  const file = nameOrPath.endsWith('.json') ? path.resolve(nameOrPath) : path.join(SCENARIO_DIR, `${nameOrPath}.json`);
  const parsed = Scenario.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n');
    throw new Error(`${file}: not a valid scenario\n${issues}`);
  }
  return parsed.data;
}
