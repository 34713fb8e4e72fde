import { pct, type PipelineReport } from './report.js';
import type { Scenario } from './scenario.js';

const fixed = (x: number | null, digits = 2) => (x === null || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits));

/** The side-by-side table, as Markdown (it reads as well in a terminal as in the README). */
export function table(sc: Scenario, reports: readonly PipelineReport[]): string {
  const rows: [string, (r: PipelineReport) => string][] = [
    ['API calls', (r) => String(r.apiCalls)],
    ['API 429s', (r) => String(r.api429s)],
    [`429s after ${sc.expect.after429sS} s`, (r) => pct(r.ratio429After)],
    ['utilization (successful calls ÷ what the limit allowed)', (r) => pct(r.utilization)],
    ["Jain's index (tenants' share ÷ fair share)", (r) => fixed(r.jain, 3)],
    ['retry amplification during the outage (calls ÷ jobs)', (r) => fixed(r.retryAmplification)],
    ['admission latency p50 / p99 (ms)', (r) => `${fixed(r.admissionP50Ms, 1)} / ${fixed(r.admissionP99Ms, 1)}`],
    ['jobs accepted / refused', (r) => `${r.accepted} / ${r.refused}`],
    ['jobs succeeded / dead', (r) => `${r.succeeded} / ${r.dead}`],
    ['jobs lost', (r) => String(r.lost)],
    ['most API calls at once (limit ' + sc.api.concurrency + ')', (r) => String(r.maxInFlight)],
  ];
  const head = `| ${sc.name} | ${reports.map((r) => r.pipeline).join(' | ')} |\n| --- |${reports.map(() => ' ---: |').join('')}`;
  const body = rows.map(([label, f]) => `| ${label} | ${reports.map(f).join(' | ')} |`).join('\n');
  const share = sc.tenants
    .map((t) => `| ${t.name}: successful calls/s (fair share ${fixed(reports[0]?.perTenant.find((p) => p.tenant === t.name)?.fairPerSec ?? null, 1)}) | ${reports.map((r) => fixed(r.perTenant.find((p) => p.tenant === t.name)?.okPerSec ?? null, 1)).join(' | ')} |`)
    .join('\n');
  return `${head}\n${body}\n${share}`;
}

const COLORS = ['#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];
const THROTTLED = '#d62728';

/**
 * One panel per pipeline: each tenant's successful API calls per second, and all 429s per second,
 * on one shared scale; outages shaded. Plain SVG, no dependency.
 */
export function chart(sc: Scenario, reports: readonly PipelineReport[]): string {
  const W = 860;
  const panelH = 220;
  const pad = { l: 48, r: 150, t: 34, b: 30 };
  const seconds = Math.max(1, ...reports.flatMap((r) => [r.series.throttled.length, ...Object.values(r.series.okPerTenant).map((s) => s.length)]));
  const top = Math.max(sc.api.ratePerSec, ...reports.flatMap((r) => [...r.series.throttled, ...Object.values(r.series.okPerTenant).flat()]));
  const yMax = Math.ceil(top / 10) * 10 || 10;
  const x = (s: number) => pad.l + ((W - pad.l - pad.r) * s) / seconds;
  const parts: string[] = [];
  reports.forEach((r, k) => {
    const y0 = k * (panelH + pad.t + pad.b) + pad.t;
    const y = (v: number) => y0 + panelH - (panelH * v) / yMax;
    parts.push(`<text x="${pad.l}" y="${y0 - 12}" font-size="14" font-weight="bold">${r.pipeline}</text>`);
    for (const o of sc.api.outages) {
      parts.push(`<rect x="${x(o.atS).toFixed(1)}" y="${y0}" width="${(x(o.atS + o.forS) - x(o.atS)).toFixed(1)}" height="${panelH}" fill="#eee"/>`);
      parts.push(`<text x="${(x(o.atS) + 4).toFixed(1)}" y="${y0 + 14}" font-size="11" fill="#777">API down</text>`);
    }
    parts.push(`<line x1="${pad.l}" y1="${y(sc.api.ratePerSec).toFixed(1)}" x2="${W - pad.r}" y2="${y(sc.api.ratePerSec).toFixed(1)}" stroke="#999" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${W - pad.r + 4}" y="${(y(sc.api.ratePerSec) + 4).toFixed(1)}" font-size="11" fill="#777">API limit ${sc.api.ratePerSec}/s</text>`);
    parts.push(`<line x1="${pad.l}" y1="${y0 + panelH}" x2="${W - pad.r}" y2="${y0 + panelH}" stroke="#333"/><line x1="${pad.l}" y1="${y0}" x2="${pad.l}" y2="${y0 + panelH}" stroke="#333"/>`);
    for (const v of [0, yMax / 2, yMax]) parts.push(`<text x="${pad.l - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end">${v}</text>`);
    for (let s = 0; s <= seconds; s += 10) parts.push(`<text x="${x(s).toFixed(1)}" y="${y0 + panelH + 16}" font-size="11" text-anchor="middle">${s}s</text>`);
    const line = (values: readonly number[], color: string, label: string, i: number) => {
      const pts = values.map((v, s) => `${x(s + 0.5).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${pts}"/>`);
      parts.push(`<rect x="${W - pad.r + 8}" y="${y0 + 30 + i * 16}" width="10" height="3" fill="${color}"/><text x="${W - pad.r + 22}" y="${y0 + 34 + i * 16}" font-size="11">${label}</text>`);
    };
    sc.tenants.forEach((t, i) => line(r.series.okPerTenant[t.name] ?? [], COLORS[i % COLORS.length]!, `${t.name} ok/s`, i));
    line(r.series.throttled, THROTTLED, '429s/s', sc.tenants.length);
  });
  const H = reports.length * (panelH + pad.t + pad.b);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n<rect width="${W}" height="${H}" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}
