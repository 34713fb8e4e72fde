// Summarises a V8 .cpuprofile (as written by `node --cpu-prof`, e.g. `BENCH_CPU_PROF=<dir> npm run
// bench:ingress`): where the samples landed, by package or source area and by function (self
// time), plus the inclusive time of the functions that matter most.
// Usage: npm run bench:profile -- <file.cpuprofile> [--top 30] [--match <substring>]
//   --match: also list the callers' share for functions whose name or url contains the substring.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';

const CallFrame = z.object({ functionName: z.string(), url: z.string(), lineNumber: z.number() });
const ProfileNode = z.object({ id: z.number(), callFrame: CallFrame, hitCount: z.number().optional(), children: z.array(z.number()).optional() });
const CpuProfile = z.object({ nodes: z.array(ProfileNode), startTime: z.number(), endTime: z.number(), samples: z.array(z.number()) });
type ProfileNode = z.infer<typeof ProfileNode>;

/** Groups a script url into the package or source area it belongs to. */
export function areaOf(url: string): string {
  if (url === '') return '(native / V8)';
  if (url.startsWith('node:')) return url.split('/')[0]!;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const m = /\/((?:apps|libs|tools)\/[^/]+)\//.exec(url);
  return m ? m[1]! : path.basename(url);
}

function label(n: ProfileNode): string {
  const f = n.callFrame;
  const where = f.url ? `${areaOf(f.url)}:${path.basename(f.url)}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
}

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' }, match: { type: 'string' } } });
  const file = positionals[0];
  if (!file) throw new Error('usage: profile-summary <file.cpuprofile> [--top N] [--match text]');
  const top = Number(values.top);
  const match = values.match;

  const profile = CpuProfile.parse(JSON.parse(readFileSync(file, 'utf8')));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const hits = new Map<number, number>();
  for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  const total = profile.samples.length;
  const usPerSample = (profile.endTime - profile.startTime) / Math.max(1, total);
  const idle = profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').reduce((s, n) => s + (hits.get(n.id) ?? 0), 0);
  const busy = total - idle;
  const pct = (h: number): string => `${((h / busy) * 100).toFixed(1).padStart(5)}%`;

  const byArea = new Map<string, number>();
  const bySelf = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, h] of hits) {
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(idle)') continue;
    const area = areaOf(n.callFrame.url);
    byArea.set(area, (byArea.get(area) ?? 0) + h);
    bySelf.set(label(n), (bySelf.get(label(n)) ?? 0) + h);
    // Inclusive: each sample counts once for every distinct function on its stack.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      inclusive.set(l, (inclusive.get(l) ?? 0) + h);
    }
  }

  const print = (title: string, m: Map<string, number>, n: number): void => {
    process.stdout.write(`\n${title}\n`);
    for (const [k, h] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) process.stdout.write(`${pct(h)}  ${k}\n`);
  };
  process.stdout.write(`${path.basename(file)}: ${total} samples of ${usPerSample.toFixed(0)} µs, busy ${((busy / total) * 100).toFixed(1)}% (percentages below are of busy samples)\n`);
  print('by area (self time)', byArea, top);
  print('by function (self time)', bySelf, top);
  print('by function (inclusive)', inclusive, top);
  if (match) {
    const sel = new Map([...inclusive].filter(([k]) => k.includes(match)));
    print(`inclusive, matching "${match}"`, sel, top);
  }
}

main();
