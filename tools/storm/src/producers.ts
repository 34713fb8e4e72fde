import type { Scenario } from './scenario.js';

export type Submission = 'accepted' | 'refused';

export interface ProducerTotals {
  accepted: number;
  refused: number;
  /** Round trip of each submission, ms. */
  latencyMs: number[];
}

/**
 * The same producers for both pipelines: each tenant submits on its schedule (steady: evenly;
 * bursts: the same mean, all of a period's jobs at once) over `durationS`, from `connections`
 * concurrent connections. A submission that falls behind its time goes as soon as a connection is
 * free (open loop as far as the connections allow); none is sent after the duration.
 */
export async function produce(sc: Scenario, submit: (tenant: string, seq: number) => Promise<Submission>): Promise<ProducerTotals> {
  const totals: ProducerTotals = { accepted: 0, refused: 0, latencyMs: [] };
  const started = performance.now();
  const endMs = sc.durationS * 1000;
  await Promise.all(
    sc.tenants.map(async (t) => {
      const due: number[] = [];
      const total = Math.floor(t.jobsPerSec * sc.durationS);
      for (let k = 0; k < total; k++) {
        if (t.profile === 'steady') due.push((k * 1000) / t.jobsPerSec);
        else {
          const perBurst = t.jobsPerSec * t.burstEveryS;
          due.push(Math.floor(k / perBurst) * t.burstEveryS * 1000);
        }
      }
      let next = 0;
      await Promise.all(
        Array.from({ length: t.connections }, async () => {
          for (;;) {
            const k = next++;
            if (k >= due.length) return;
            const wait = due[k]! - (performance.now() - started);
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
            if (performance.now() - started >= endMs) return;
            const t0 = performance.now();
            const result = await submit(t.name, k).catch((): Submission => 'refused');
            totals.latencyMs.push(performance.now() - t0);
            totals[result] += 1;
          }
        }),
      );
    }),
  );
  return totals;
}

/** Exponential backoff with full jitter in [½, 1] of the step: what a typical worker library does. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const step = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return Math.round(step * (0.5 + random() * 0.5));
}
