import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchJobViews, waitFor } from '@janus/testing';
import { callDependency, openProtectionStack, perSecond, sleep, startMockApi, type MockApi, type ProtectionStack } from './protection-stack.js';

/**
 * An outage of a dependency (CONTRACT §2 `adaptive`: the outage circuit), through the whole path:
 * real ingress, retry-scheduler and persister processes, a worker SDK worker whose handler calls
 * the dependency and returns its Response (a 503 without Retry-After is a plain failure).
 *
 * The dependency is declared at 50/s. Producers send 20 jobs/s in mode `queue` for 25 s; the API
 * answers 503 (no Retry-After) to everything from 5 s to 15 s, 200 otherwise.
 *
 * Criteria (the issue): the API gets at most 1.2 × as many calls during the outage as first
 * attempts were submitted during it (the circuit holds the jobs back instead of burning their
 * attempts); once it is over and the circuit has closed, the backlog drains at the declared rate
 * (at least 80 % of 50/s while it lasts); no job is dead (default maxAttempts 3: failures while
 * the circuit is open are not charged; a probe's failure is, and a few jobs take one each). A job sent in mode `now` while the circuit is
 * open is refused 429 with reason `dependency_unavailable` (CONTRACT §3).
 */
const DECLARED = 50; // per second
const LOAD_PER_S = 20;
const LOAD_MS = 25_000;
const OUTAGE = { from: 5_000, to: 15_000 };

let stack: ProtectionStack;
let api: MockApi;
let t0 = Number.POSITIVE_INFINITY;

beforeAll(async () => {
  api = await startMockApi((now) => (now >= t0 + OUTAGE.from && now < t0 + OUTAGE.to ? { status: 503 } : { status: 200 }));
  stack = await openProtectionStack(
    'dep_outage',
    {
      dependencies: { api: { rate: { limit: DECLARED, periodMs: 1000 } } },
      tenants: { acme: { maxQueued: 10_000 } },
      jobTypes: { call: { dependencies: [{ name: 'api' }] } },
    },
    { persister: true },
  );
}, 90_000);

afterAll(async () => {
  await stack?.close();
  await api?.close();
}, 30_000);

describe('a dependency outage', () => {
  it('the circuit holds jobs back during a 10 s outage; the backlog then drains at the declared rate; no job is dead', async () => {
    const succeeded = new Map<string, number>(); // jobId -> when its call succeeded
    await stack.worker('call', async (job, ctx) => {
      const res = (await callDependency(api.url)(job, ctx)) as Response;
      if (res.ok) succeeded.set(job.jobId, Date.now());
      return res;
    }, 64);

    // The circuit, sampled every 100 ms.
    const states: { at: number; circuit: string }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await stack.bed.limiter.dependencyState('api');
        if (s) states.push({ at: Date.now(), circuit: s.circuit.state });
        await sleep(100);
      }
    })();

    t0 = Date.now();
    // The load: job i is sent at t0 + i × 50 ms, whatever the answers before it.
    const sent: { at: number; status: number; answer: string; jobId: string }[] = [];
    const sending: Promise<void>[] = [];
    const total = (LOAD_MS / 1000) * LOAD_PER_S;
    const load = (async () => {
      for (let i = 0; i < total; i++) {
        const due = t0 + (i * 1000) / LOAD_PER_S;
        if (due > Date.now()) await sleep(due - Date.now());
        const at = Date.now();
        sending.push(
          stack.post({ type: 'call', payload: { i }, mode: 'queue' }).then((r) => {
            sent.push({ at, status: r.status, answer: String(r.body.status), jobId: String(r.body.jobId) });
          }),
        );
      }
      await Promise.all(sending);
    })();

    // A job in mode `now` while the circuit is open.
    const refusal = await waitFor(async () => {
      if (Date.now() < t0 + OUTAGE.from + 2_000) return undefined;
      const s = await stack.bed.limiter.dependencyState('api');
      if (s?.circuit.state !== 'open' || (s.circuit.probeAt ?? 0) - s.at < 300) return undefined;
      return stack.post({ type: 'call', payload: { now: true } });
    }, OUTAGE.to - OUTAGE.from, 50);
    await load;
    const nowJob = refusal.status === 202 ? String(refusal.body.jobId) : undefined;

    const jobIds = sent.map((s) => s.jobId).concat(nowJob ? [nowJob] : []);
    // Until every job succeeded (or some are dead letters and the rest succeeded).
    await waitFor(async () => succeeded.size >= jobIds.length || succeeded.size + (await stack.deadLetters()) >= jobIds.length, 40_000, 100).catch(() => undefined);
    const doneMs = Date.now() - t0;
    sampling = false;
    await sampler;

    // Per second: jobs sent, API calls, 503s, successes, the circuit, and the backlog (sent, not
    // yet succeeded) at the end of the second.
    const seconds = Math.ceil(doneMs / 1000);
    const sentPer = perSecond(sent.map((s) => s.at), t0, seconds);
    const calls = perSecond(api.calls.map((c) => c.at), t0, seconds);
    const failed = perSecond(api.calls.filter((c) => c.status === 503).map((c) => c.at), t0, seconds);
    const ok = perSecond([...succeeded.values()], t0, seconds);
    const rows: string[] = [];
    for (let i = 0; i < seconds; i++) {
      const inSecond = [...new Set(states.filter((s) => s.at >= t0 + i * 1000 && s.at < t0 + (i + 1) * 1000).map((s) => s.circuit))].join(',');
      const backlog = sent.filter((s) => s.at < t0 + (i + 1) * 1000).length - [...succeeded.values()].filter((t) => t < t0 + (i + 1) * 1000).length;
      rows.push(`${String(i).padStart(3)} | ${String(sentPer[i]).padStart(4)} | ${String(calls[i]).padStart(5)} | ${String(failed[i]).padStart(4)} | ${String(ok[i]).padStart(4)} | ${String(backlog).padStart(7)} | ${inSecond}`);
    }
    const answers = new Map<string, number>();
    for (const s of sent) answers.set(s.answer, (answers.get(s.answer) ?? 0) + 1);
    console.log(
      `[outage] ${sent.length} jobs sent over ${LOAD_MS} ms (${[...answers].map(([k, v]) => `${k} ${v}`).join(', ')}), API down ${OUTAGE.from}–${OUTAGE.to} ms; ${succeeded.size} succeeded after ${doneMs} ms\n` +
        `  mode now during the outage: ${refusal.status} ${JSON.stringify(refusal.body)} (Retry-After: ${refusal.retryAfter})\n` +
        '  s | sent | calls |  503 |   ok | backlog | circuit\n' +
        rows.join('\n'),
    );

    // During the outage: API calls against first attempts sent.
    const during = (t: number) => t >= t0 + OUTAGE.from && t < t0 + OUTAGE.to;
    const callsDuring = api.calls.filter((c) => during(c.at)).length;
    const firstsDuring = sent.filter((s) => during(s.at)).length;

    // The drain: from the circuit's closing after the outage until the backlog is down to one second
    // of load (what keeps coming, not a backlog).
    const closedAt = states.find((s) => s.at >= t0 + OUTAGE.to && s.circuit === 'closed')?.at ?? Number.POSITIVE_INFINITY;
    const backlogAt = (t: number) => sent.filter((s) => s.at < t).length - [...succeeded.values()].filter((x) => x < t).length;
    let drainEnd = closedAt;
    while (drainEnd < t0 + doneMs && backlogAt(drainEnd + 100) > LOAD_PER_S) drainEnd += 100;
    drainEnd += 100;
    const drained = [...succeeded.values()].filter((t) => t >= closedAt && t < drainEnd).length;
    const drainRate = (drained * 1000) / (drainEnd - closedAt);
    const drainedAfterBurst = [...succeeded.values()].filter((t) => t >= closedAt + 1000 && t < drainEnd).length;
    const steadyRate = drainEnd - closedAt > 2_000 ? (drainedAfterBurst * 1000) / (drainEnd - closedAt - 1000) : Number.NaN;
    console.log(
      `[outage] during the outage: ${callsDuring} API calls for ${firstsDuring} first attempts sent (${(callsDuring / firstsDuring).toFixed(2)} ×)\n` +
        `  circuit closed at ${closedAt - t0} ms (outage over at ${OUTAGE.to} ms); backlog then ${backlogAt(closedAt)}; drained to one second of load by ${drainEnd - t0} ms:` +
        ` ${drained} succeeded in ${drainEnd - closedAt} ms = ${drainRate.toFixed(1)}/s (${((drainRate / DECLARED) * 100).toFixed(1)} % of ${DECLARED}/s; ${steadyRate.toFixed(1)}/s after its first second)`,
    );

    // Every job ends succeeded (what the persister stored, through GET /v1/jobs/{id}): wait until
    // each is succeeded or dead there.
    const views = await waitFor(async () => {
      const v = await fetchJobViews(stack.ingresses[0]!.url, stack.apiKey, jobIds);
      return [...v.values()].filter((j) => j.status === 'succeeded' || j.status === 'dead').length === jobIds.length ? v : undefined;
    }, 30_000, 500).catch(() => fetchJobViews(stack.ingresses[0]!.url, stack.apiKey, jobIds));
    const statuses = new Map<string, number>();
    for (const id of jobIds) statuses.set(views.get(id)?.status ?? 'missing', (statuses.get(views.get(id)?.status ?? 'missing') ?? 0) + 1);
    const attempts = [...views.values()].map((v) => v.attempts.length);
    const rel = (iso: string | undefined) => (iso === undefined ? '?' : String(Date.parse(iso) - t0));
    const dead = [...views.values()].filter((v) => v.status === 'dead').slice(0, 5);
    console.log(
      `[outage] job statuses: ${[...statuses].map(([k, v]) => `${k} ${v}`).join(', ')}; attempts per job: max ${Math.max(...attempts)}, jobs with more than one: ${attempts.filter((a) => a > 1).length}` +
        dead.map((v) => `\n  dead ${v.jobId}: ${v.attempts.map((a) => `#${a.attempt} admitted ${rel(a.admittedAt)} ms ${a.outcome ?? '-'} ${rel(a.finishedAt)} ms`).join('; ')}`).join(''),
    );

    expect(refusal.status).toBe(429);
    expect(refusal.body).toMatchObject({ status: 'rejected', reason: 'dependency_unavailable' });
    expect(refusal.body.retryAfterMs).toEqual(expect.any(Number));
    expect(refusal.retryAfter).toMatch(/^\d+$/);
    expect(sent.every((s) => s.status === 202)).toBe(true);
    expect(callsDuring).toBeLessThanOrEqual(1.2 * firstsDuring);
    expect(closedAt).toBeLessThan(Number.POSITIVE_INFINITY);
    expect(drainRate).toBeGreaterThanOrEqual(0.8 * DECLARED);
    expect(statuses.get('succeeded')).toBe(jobIds.length);
  }, 120_000);
});
