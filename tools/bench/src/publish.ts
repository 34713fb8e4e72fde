// Acked JetStream publishes: libs/messaging's AckPublisher against nats.js's js.publish (the baseline)
// in the same run, on one connection, 64 publishes in flight, the ingress's job message and msgIDs.
// Reports messages/s and this process's CPU per message (what the ingress pays on its own core).
// Usage: npm run bench:publish [-- --smoke]   (--smoke: one ~2 s round per case, for CI)
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { loadSettings } from '@janus/config';
import { AckPublisher, connectNats } from '@janus/messaging';

const smoke = process.argv.includes('--smoke');
const IN_FLIGHT = 64;
const DURATION_MS = smoke ? 2000 : 5000;
const ROUNDS = smoke ? 1 : 3;

const settings = loadSettings({ ...process.env, NODE_ENV: process.env.NODE_ENV ?? 'development' });
const prefix = `benchpub${process.pid}`;
const stream = `BENCH_PUBLISH_${process.pid}`;
const nc = await connectNats(settings, { name: 'bench-publish' });
const jsm = await jetstreamManager(nc);
await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`] });
const js = jetstream(nc);
const publisher = new AckPublisher(nc);

// The message ingress publishes for one job (JobMessage), ~330 bytes.
const at = new Date().toISOString();
const body = JSON.stringify({
  jobId: '01JD7ZK3W8Q4Y6T2N5M9B1C3XE',
  type: 'bench',
  tenant: 'acme',
  attempt: 1,
  priority: 'normal',
  payload: { to: 'user@example.com', template: 'welcome', n: 42 },
  admittedAt: at,
  lease: { id: 'Qm3x9Lk2PzW81z_12', token: `Qm3x9Lk2PzW81z_12.${'x'.repeat(43)}`, expiresAt: at },
});
let seq = 0;
const cases = [
  { name: 'nats.js js.publish (baseline)', op: () => js.publish(`${prefix}.jobs`, body, { msgID: `m${++seq}.1`, timeout: 5000 }) },
  { name: 'AckPublisher.publish', op: () => publisher.publish(`${prefix}.jobs`, body, `m${++seq}.1`, 5000) },
];

async function drive(op: () => Promise<unknown>, ms: number): Promise<{ perSec: number; cpuUsPerMsg: number }> {
  const deadline = performance.now() + ms;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  let done = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < deadline) {
        await op();
        done += 1;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { perSec: done / ((performance.now() - started) / 1000), cpuUsPerMsg: (cpu.user + cpu.system) / done };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const results = cases.map((c) => ({ name: c.name, perSec: [] as number[], cpuUsPerMsg: [] as number[] }));
for (const c of cases) await drive(c.op, smoke ? 300 : 1000); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  for (const [i, c] of cases.entries()) {
    const m = await drive(c.op, DURATION_MS);
    results[i]!.perSec.push(m.perSec);
    results[i]!.cpuUsPerMsg.push(m.cpuUsPerMsg);
  }
}
const [base, ours] = results.map((r) => ({ ...r, medianPerSec: median(r.perSec), medianCpuUs: median(r.cpuUsPerMsg) }));
console.log(`\nAcked JetStream publish${smoke ? ' (smoke)' : ''}: ${IN_FLIGHT} in flight, ${ROUNDS} round(s) of ${DURATION_MS} ms, medians`);
console.log('| case | msgs/s | client CPU µs/msg |');
console.log('| --- | ---: | ---: |');
for (const r of [base!, ours!]) console.log(`| ${r.name} | ${Math.round(r.medianPerSec).toLocaleString('en-US')} | ${r.medianCpuUs.toFixed(1)} |`);
console.log(`\nAckPublisher = ${((ours!.medianPerSec / base!.medianPerSec) * 100).toFixed(0)}% of js.publish's throughput at ${((ours!.medianCpuUs / base!.medianCpuUs) * 100).toFixed(0)}% of its client CPU per message`);

const out = { at: new Date().toISOString(), smoke, node: process.version, cpus: cpus().length, inFlight: IN_FLIGHT, durationMs: DURATION_MS, rounds: ROUNDS, messageBytes: Buffer.byteLength(body), results: [base, ours] };
mkdirSync('bench-results', { recursive: true });
const file = `bench-results/publish-${out.at.replace(/[:.]/g, '-')}.json`;
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote ${file}`);
publisher.close();
await jsm.streams.delete(stream);
await nc.close();
