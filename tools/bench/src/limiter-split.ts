// Where an admission's cost goes: the limiter at 1, 8 and 32 jobs per Lua call (64 callers), with
// Redis's own time per call and per job (INFO commandstats, evalsha) and this process's CPU per job.
// Two call sizes separate a call's fixed cost from each job's. Not a ratio benchmark: a tool for
// changing the admit script or its codec (docs/performance.md).
// Usage: npm run bench:limiter-split   (env PER=32 ROUNDS=2000: one call size, longer; CONFIRM=1:
// each admission is also confirmed 1 ms later, as the admission pipeline does once JetStream stored
// its job — the difference to a run without is the confirm's cost)
import { Redis } from 'ioredis';
import { loadSettings } from '@janus/config';
import { PolicyDocument } from '@janus/contracts';
import { compilePolicy, Limiter } from '@janus/limiter';
import { dropRedisNamespace } from '@janus/testing';

const CALLERS = 64;
const settings = loadSettings({ ...process.env, NODE_ENV: 'development' });
const ns = `split_${process.pid}`;
// bench:limiter's job: a dependency rate, cost rate, concurrency and per-tenant concurrency, a
// tenant rate and budget, a global rate (13 limit entries with the guard, attempts and credits).
const policy = compilePolicy(
  PolicyDocument.parse({
    dependencies: {
      llm: { rate: { limit: 100_000_000, periodMs: 1000 }, costRate: { limit: 1_000_000_000, periodMs: 1000 }, concurrency: 100_000_000, perTenant: { concurrency: 100_000_000 } },
    },
    tenants: { acme: { rate: { limit: 100_000_000, periodMs: 1000 }, budget: { limit: 1_000_000_000_000, periodMs: 3_600_000 } } },
    global: { rate: { limit: 100_000_000, periodMs: 1000 } },
    jobTypes: { summarize: { dependencies: [{ name: 'llm', cost: 10 }], timeoutMs: 1000 } },
  }),
  1,
);
const confirm = process.env.CONFIRM === '1';
const sizes = process.env.PER ? [Number(process.env.PER)] : [1, 8, 32];
const rounds = (per: number) => (per === 1 ? 60 : Number(process.env.ROUNDS ?? 300));

const redis = new Redis(settings.redisUrl);
const admin = new Redis(settings.redisUrl);
let seq = 0;
try {
  for (const per of sizes) {
    const limiter = new Limiter({ redis, namespace: ns, signingKey: settings.signingKey, policy, leaseRetentionMs: 1000, maxJobsPerCall: per });
    await limiter.init({ fresh: true });
    const run = (n: number) =>
      Promise.all(
        Array.from({ length: CALLERS }, async () => {
          for (let i = 0; i < n; i++) {
            seq += 1;
            const request = { jobs: [{ jobId: `j${seq}`, tenant: 'acme', jobType: 'summarize', priority: 'normal' as const }] };
            const admitted = await limiter.admit(request);
            if (confirm && admitted.kind === 'admitted') {
              // the job message's publish, as in the admission pipeline (JetStream answers in about a millisecond)
              await new Promise((resolve) => setTimeout(resolve, 1));
              await limiter.confirm(request, admitted, [seq]);
            }
          }
        }),
      );
    await run(20); // warm up
    await admin.config('RESETSTAT');
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await run(rounds(per));
    const cpu = process.cpuUsage(cpu0);
    const ms = performance.now() - t0;
    const stats = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await admin.info('commandstats'));
    const calls = Number(stats?.[1]);
    const usec = Number(stats?.[2]);
    const jobs = CALLERS * rounds(per);
    console.log(
      `${per} job(s) a call${confirm ? ', each confirmed' : ''}: ${calls} calls, Redis ${(usec / calls).toFixed(1)} µs a call = ${(usec / jobs).toFixed(2)} µs a job; ` +
        `Node ${((cpu.user + cpu.system) / jobs).toFixed(2)} µs a job; ${Math.round((jobs / ms) * 1000)} admissions/s`,
    );
    await admin.zremrangebyscore(limiter.keys.leaseExpiry, '-inf', '+inf');
  }
} finally {
  await dropRedisNamespace(settings.redisUrl, ns);
  redis.disconnect();
  admin.disconnect();
}
