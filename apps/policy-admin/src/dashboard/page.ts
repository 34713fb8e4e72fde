import { JobStatus } from '@janus/contracts';

/**
 * The dashboard: one static page and one script. The admin token is entered in a form, kept in
 * sessionStorage (gone with the tab) and sent as Bearer to `GET /v1/dashboard` once a second, and to
 * the admin job routes (`/v1/admin/jobs…`) and pause routes the Jobs panel and buttons call.
 * Everything is rendered with textContent (dead-letter errors and payloads are arbitrary text).
 * The charts are uPlot, served by this app from its npm package (routes/dashboard.ts): no CDN.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Janus policy admin</title>
<link rel="stylesheet" href="/dashboard/assets/uPlot.min.css">
<style>
  :root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2430; background: #f4f6f9; }
  body { margin: 0; }
  header { background: #1d2430; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { font-size: 13px; opacity: .8; }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); }
  section { background: #fff; border-radius: 6px; padding: 12px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  h2 { font-size: 15px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #e5e8ee; vertical-align: top; }
  th { font-weight: 600; color: #4a5568; }
  td.num { font-variant-numeric: tabular-nums; text-align: right; }
  .bar { height: 6px; background: #e5e8ee; border-radius: 3px; min-width: 60px; }
  .bar > span { display: block; height: 6px; border-radius: 3px; background: #3b82f6; }
  .muted { color: #8a94a6; }
  .problems { color: #b42318; font-size: 13px; }
  section.wide { grid-column: 1 / -1; }
  .st-open { color: #b42318; font-weight: 600; }
  .st-half_open { color: #b54708; font-weight: 600; }
  .k-ratio { color: #3b82f6; }
  .k-inflight { color: #f59e0b; }
  svg.spark { display: block; background: #f8fafc; border-radius: 3px; }
  #login { max-width: 360px; margin: 80px auto; background: #fff; padding: 24px; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
  #login input { width: 100%; box-sizing: border-box; padding: 8px; margin: 8px 0; font-family: monospace; }
  #login button { padding: 8px 16px; }
  #login .error { color: #b42318; min-height: 1em; font-size: 13px; }
  [hidden] { display: none !important; }
  .charts { display: flex; flex-wrap: wrap; gap: 12px; }
  .chart { border: 1px solid #e5e8ee; border-radius: 4px; padding: 4px; }
  .chart h3, #jobs-panel h3 { font-size: 13px; margin: 2px 4px 4px; }
  .tools { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; font-size: 13px; }
  .tools input, .tools select { padding: 4px 6px; }
  #job-search { width: 300px; font-family: monospace; }
  button.link { background: none; border: none; padding: 0; color: #2563eb; cursor: pointer; font-family: monospace; font-size: 12px; text-align: left; }
  td button { font-size: 12px; }
  .ok { color: #067647; font-size: 13px; }
  .js-dead { color: #b42318; font-weight: 600; }
  .js-succeeded { color: #067647; font-weight: 600; }
  .js-retrying, .js-queued { color: #b54708; }
  .paused { color: #b42318; font-weight: 600; }
  #job-detail { border: 1px solid #e5e8ee; border-radius: 4px; padding: 8px; margin-bottom: 8px; }
  #job-detail pre { background: #f8fafc; padding: 6px; max-height: 200px; overflow: auto; font-size: 12px; margin: 0; }
</style>
</head>
<body>
<form id="login" hidden>
  <h2>Janus policy admin</h2>
  <label for="token">Admin token</label>
  <input id="token" name="token" type="password" autocomplete="off" required>
  <div class="error" id="login-error"></div>
  <button type="submit" id="login-submit">Enter</button>
</form>
<div id="dashboard" hidden>
  <header>
    <h1>Janus</h1>
    <span class="meta">namespace <b id="namespace">–</b></span>
    <span class="meta">policy version <b id="version">–</b></span>
    <span class="meta">updated <span id="updated">–</span></span>
    <span class="meta"><a href="#" id="logout" style="color:#fff">sign out</a></span>
  </header>
  <main>
    <section><h2>Dependencies <span class="muted" id="window"></span></h2>
      <table id="deps"><thead><tr><th>dependency</th><th>admitted/s</th><th>rejected/s by reason</th><th>in flight / concurrency</th><th>rate headroom</th><th>cost headroom</th></tr></thead><tbody></tbody></table>
      <div class="problems" id="problems"></div>
    </section>
    <section><h2>Tenants</h2>
      <table id="tenants"><thead><tr><th>tenant</th><th>weight</th><th>in flight</th><th>budget used / limit</th><th>resets</th><th>queued</th><th>oldest waiting</th><th>credits (reserved)</th></tr></thead><tbody></tbody></table>
    </section>
    <section class="wide"><h2>Dependency state <span class="muted">adaptive limits, outage circuit, retry budget; chart: <span class="k-ratio">effective ratio</span> and <span class="k-inflight">in flight</span>, last <span id="history-window">10 min</span></span></h2>
      <table id="dep-state"><thead><tr><th>dependency</th><th>declared rate</th><th>effective rate (ratio)</th><th>cooldown until</th><th>circuit</th><th>in flight</th><th>retries / allowed (10 s)</th><th>recent</th><th>admission</th></tr></thead><tbody></tbody></table>
    </section>
    <section class="wide"><h2>Admissions per dependency <span class="muted">last <span id="charts-window">15 min</span>: admitted/s, rejected/s by reason, throttled/s (workers' 429s), effective rate % of the declared</span></h2>
      <div class="charts" id="charts"></div>
    </section>
    <section class="wide" id="jobs-panel"><h2>Jobs</h2>
      <div class="tools">
        <form id="job-search-form"><input id="job-search" placeholder="job id" autocomplete="off"> <button type="submit" id="job-search-go">Find</button></form>
        <label>status <select id="job-status"><option value="">any</option>${JobStatus.options.map((s) => `<option value="${s}">${s}</option>`).join('')}</select></label>
        <label>tenant <input id="job-tenant" placeholder="all tenants" size="14"></label>
        <button type="button" id="jobs-list">List</button>
      </div>
      <div class="problems" id="jobs-error"></div>
      <div id="job-detail" hidden>
        <h3>Job <span id="jd-id"></span> <button type="button" id="jd-close">close</button></h3>
        <table><tbody>
          <tr><th>status</th><td id="jd-status"></td><th>tenant</th><td id="jd-tenant"></td><th>type</th><td id="jd-type"></td><th>priority</th><td id="jd-priority"></td></tr>
          <tr><th>created</th><td id="jd-created"></td><th>not before</th><td id="jd-notbefore"></td><th>attempts</th><td id="jd-attempts"></td><th>last error</th><td id="jd-error"></td></tr>
        </tbody></table>
        <h3>Attempts</h3>
        <table id="jd-attempt-list"><thead><tr><th>attempt</th><th>admitted</th><th>outcome</th><th>finished</th><th>error</th></tr></thead><tbody></tbody></table>
        <h3>Payload</h3>
        <pre id="jd-payload"></pre>
      </div>
      <table id="jobs"><thead><tr><th>created</th><th>job</th><th>tenant</th><th>type</th><th>status</th><th>attempts</th><th>last error</th></tr></thead><tbody></tbody></table>
      <button type="button" id="jobs-more" hidden>More</button>
    </section>
    <section class="wide"><h2>Dead jobs <span class="muted">status dead now; a replay is a new attempt, admitted like any retry</span></h2>
      <div id="replay-msg"></div>
      <table id="dead-jobs"><thead><tr><th>created</th><th>job</th><th>tenant</th><th>type</th><th>attempts</th><th>last error</th><th></th></tr></thead><tbody></tbody></table>
      <button type="button" id="dead-more" hidden>More</button>
    </section>
    <section><h2>Recent dead letters</h2>
      <table id="dead"><thead><tr><th>when</th><th>job</th><th>type</th><th>tenant</th><th>attempts</th><th>last error</th></tr></thead><tbody></tbody></table>
    </section>
    <section><h2>Policy history</h2>
      <table id="history"><thead><tr><th>version</th><th>when</th><th>by</th><th>change</th></tr></thead><tbody></tbody></table>
    </section>
  </main>
</div>
<script src="/dashboard/assets/uPlot.iife.min.js"></script>
<script src="/dashboard/app.js"></script>
</body>
</html>
`;

export const DASHBOARD_JS = `(() => {
  'use strict';
  const KEY = 'janusAdminToken';
  const $ = (id) => document.getElementById(id);
  let timer;
  let ticks = 0;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function row(cells) {
    const tr = el('tr');
    for (const c of cells) {
      if (c instanceof Node) { const td = el('td'); td.appendChild(c); tr.appendChild(td); }
      else if (typeof c === 'number') tr.appendChild(el('td', c, 'num'));
      else tr.appendChild(el('td', c === null || c === undefined ? '–' : c));
    }
    return tr;
  }
  function fill(tableId, rows, empty) {
    const body = $(tableId).querySelector('tbody');
    body.replaceChildren(...(rows.length ? rows : [row([empty])]));
  }
  function bar(used, cap) {
    const wrap = el('div');
    wrap.appendChild(el('div', cap === null ? used + ' (no limit)' : used + ' / ' + cap));
    if (cap) { const b = el('div', null, 'bar'); const s = el('span'); s.style.width = Math.min(100, Math.round(100 * used / cap)) + '%'; b.appendChild(s); wrap.appendChild(b); }
    return wrap;
  }
  const headroom = (b) => (b ? b.available + ' of ' + b.capacity : '–');
  const reasons = (r) => { const parts = Object.entries(r || {}).filter(([, n]) => n > 0).map(([k, n]) => k + ' ' + n); return parts.length ? parts.join(', ') : '0'; };
  const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '–');
  const PERIODS = { 1000: 's', 60000: 'min', 3600000: 'h', 86400000: 'day' };
  // Effective limits are fractional (ratio × declared): a few significant digits are enough to read.
  const num = (n) => (n >= 10 ? Math.round(n) : Math.round(n * 100) / 100);
  const per = (r) => (r ? num(r.limit) + ' / ' + (PERIODS[r.periodMs] || r.periodMs + ' ms') : null);
  // A rate and a cost rate on one cell: either may be absent.
  const rates = (rate, cost) => [per(rate), cost ? 'cost ' + per(cost) : null].filter(Boolean).join(', ') || 'no rate';
  const SVG = 'http://www.w3.org/2000/svg';

  // The sparkline: effective ratio (0–1) and in flight (0–concurrency, or the highest seen) over the
  // history window, the newest sample at the right edge. Drawn from the snapshot's samples.
  function spark(samples, windowMs, cap) {
    const W = 160, H = 34, svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('width', W);
    svg.setAttribute('height', H);
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    const title = document.createElementNS(SVG, 'title');
    const last = samples[samples.length - 1];
    title.textContent = last ? 'ratio ' + last[1] + ', in flight ' + last[2] + ' (' + samples.length + ' samples)' : 'no samples yet';
    svg.appendChild(title);
    if (!last) return svg;
    const end = last[0], start = end - windowMs;
    const top = Math.max(1, cap || 0, ...samples.map((x) => x[2]));
    const line = (pick, max, color) => {
      const pts = samples.map((x) => [(W - 3) * Math.max(0, x[0] - start) / windowMs + 1, H - 2 - (H - 4) * Math.min(1, pick(x) / max)]);
      const pl = document.createElementNS(SVG, 'polyline');
      pl.setAttribute('points', pts.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' '));
      pl.setAttribute('fill', 'none');
      pl.setAttribute('stroke', color);
      pl.setAttribute('stroke-width', '1.5');
      svg.appendChild(pl);
      // The newest value as a dot: visible even while the history holds one sample.
      const dot = document.createElementNS(SVG, 'circle');
      const p = pts[pts.length - 1];
      dot.setAttribute('cx', p[0].toFixed(1));
      dot.setAttribute('cy', p[1].toFixed(1));
      dot.setAttribute('r', '2');
      dot.setAttribute('fill', color);
      svg.appendChild(dot);
    };
    line((x) => x[2], top, '#f59e0b');
    line((x) => x[1], 1, '#3b82f6');
    return svg;
  }

  // Pause/Resume (POST /v1/dependencies/{name}/pause|resume): the button says what a click does; the
  // state shown is the snapshot's, so it changes at the next poll after the click.
  function pauseCell(name, s) {
    const wrap = el('div');
    wrap.appendChild(el('span', s.paused ? 'paused' + (s.pausedUntil ? ' until ' + time(s.pausedUntil) : '') : 'open', s.paused ? 'paused' : 'muted'));
    wrap.appendChild(document.createTextNode(' '));
    const b = el('button', s.paused ? 'Resume' : 'Pause');
    b.type = 'button';
    b.dataset.pause = name;
    b.dataset.action = s.paused ? 'resume' : 'pause';
    wrap.appendChild(b);
    return wrap;
  }

  // The admission charts (uPlot), one per dependency, kept between polls: setData on each snapshot,
  // rebuilt only when the set of rejection reasons (the series) changes.
  const charts = new Map();
  const REASON_COLORS = ['#dc2626', '#ea580c', '#ca8a04', '#db2777', '#7c3aed', '#0891b2', '#4b5563', '#be123c', '#65a30d', '#0f766e', '#a16207', '#6d28d9', '#b91c1c'];
  function chartData(x, bucketSeconds) {
    const buckets = x.admissions || [];
    const reasons = Array.from(new Set(buckets.flatMap((k) => Object.keys(k[2])))).sort();
    const xs = buckets.map((k) => k[0] / 1000);
    const perSec = (n) => Math.round((n / bucketSeconds) * 100) / 100;
    // The effective rate at the end of each bucket: the last state sample by then (ratio × 100 %).
    const samples = x.history || [];
    const effective = buckets.map((k) => {
      let last = null;
      for (const smp of samples) { if (smp[0] <= k[0] + bucketSeconds * 1000) last = smp; else break; }
      return last ? Math.round(last[1] * 1000) / 10 : null;
    });
    const throttled = buckets.map((k) => perSec(k[3] || 0));
    return { reasons, data: [xs, buckets.map((k) => perSec(k[1])), ...reasons.map((r) => buckets.map((k) => perSec(k[2][r] || 0))), throttled, effective] };
  }
  function renderCharts(d) {
    const box = $('charts');
    const names = new Set(d.dependencies.map((x) => x.name));
    for (const [name, c] of charts) if (!names.has(name)) { c.plot.destroy(); c.wrap.remove(); charts.delete(name); }
    $('charts-window').textContent = Math.round(d.admissions.windowMs / 60000) + ' min';
    if (typeof uPlot !== 'function') { box.textContent = 'charts unavailable (uPlot did not load)'; return; }
    for (const x of d.dependencies) {
      const { reasons, data } = chartData(x, d.admissions.bucketSeconds);
      const key = reasons.join(',');
      let c = charts.get(x.name);
      if (c && c.key !== key) { c.plot.destroy(); c.wrap.remove(); charts.delete(x.name); c = undefined; }
      if (!c) {
        const wrap = el('div', null, 'chart');
        wrap.dataset.chart = x.name;
        wrap.appendChild(el('h3', x.name));
        box.appendChild(wrap);
        const opts = {
          width: 440,
          height: 170,
          scales: { x: { time: true }, pct: { range: [0, 100] } },
          series: [
            {},
            { label: 'admitted/s', stroke: '#16a34a', width: 1.5 },
            ...reasons.map((r, i) => ({ label: r + '/s', stroke: REASON_COLORS[i % REASON_COLORS.length], width: 1.5 })),
            { label: 'throttled/s', stroke: '#9333ea', width: 1.5 },
            { label: 'effective %', stroke: '#64748b', width: 1, dash: [4, 3], scale: 'pct' },
          ],
          axes: [{}, { size: 44 }, { side: 1, scale: 'pct', size: 36, grid: { show: false } }],
        };
        c = { key, wrap, plot: new uPlot(opts, data, wrap) };
        charts.set(x.name, c);
      } else {
        c.plot.setData(data);
      }
    }
  }

  function stateRow(x, windowMs) {
    const s = x.state;
    if (!s) { const tr = row([x.name, '–', '–', '–', '–', '–', '–', '–', '–']); tr.dataset.depState = x.name; return tr; }
    const ratio = Math.round(s.effective.ratio * 100) + '%';
    const effective = s.adaptive ? rates(s.effective.rate, s.effective.costRate) + ' (' + ratio + ')' : 'as declared (adaptive off)';
    const left = (iso) => ' (' + Math.max(0, (Date.parse(iso) - Date.parse(s.at)) / 1000).toFixed(1) + ' s)';
    const circuit = el('span', s.circuit.state.replace('_', '-') + (s.circuit.state === 'open' ? ', probe ' + time(s.circuit.probeAt) : ''), 'st-' + s.circuit.state);
    // The chart ends with the state just read (samples come every few seconds).
    const samples = x.history.slice();
    const at = Date.parse(s.at);
    if (!samples.length || samples[samples.length - 1][0] < at) samples.push([at, s.effective.ratio, s.inFlight]);
    const tr = row([
      x.name,
      rates(s.declared.rate, s.declared.costRate),
      effective,
      s.cooldownUntil ? time(s.cooldownUntil) + left(s.cooldownUntil) : '–',
      circuit,
      bar(s.inFlight, s.declared.concurrency),
      s.retryBudget.retries + ' / ' + s.retryBudget.allowed,
      spark(samples, windowMs, s.declared.concurrency),
      pauseCell(x.name, s),
    ]);
    tr.dataset.depState = x.name;
    ['name', 'declared', 'effective', 'cooldown', 'circuit', 'inflight', 'retry-budget', 'chart', 'pause'].forEach((f, i) => { tr.children[i].dataset.field = f; });
    tr.children[6].title = s.retryBudget.firstAttempts + ' first attempts and ' + s.retryBudget.retries + ' retries admitted in the last ' + s.retryBudget.windowMs / 1000 + ' s';
    return tr;
  }

  function render(d) {
    $('namespace').textContent = d.namespace;
    $('version').textContent = String(d.policy.version);
    $('updated').textContent = time(d.at);
    $('window').textContent = '(per second, last ' + d.windowSeconds + ' s)';
    const deps = d.dependencies.map((x) => {
      const tr = row([x.name, x.admittedPerSec ?? '–', reasons(x.rejectedPerSec), x.inFlight === null ? '–' : bar(x.inFlight, x.concurrency), headroom(x.rate), headroom(x.costRate)]);
      tr.dataset.dep = x.name;
      tr.children[1].dataset.field = 'admitted';
      tr.children[2].dataset.field = 'rejected';
      return tr;
    });
    if (d.unattributed && (d.unattributed.admittedPerSec || Object.keys(d.unattributed.rejectedPerSec || {}).length)) {
      const tr = row(['(no dependency)', d.unattributed.admittedPerSec ?? '–', reasons(d.unattributed.rejectedPerSec), '–', '–', '–']);
      tr.dataset.dep = '*';
      deps.push(tr);
    }
    fill('deps', deps, 'no dependencies in the policy');
    $('history-window').textContent = d.history.windowMs >= 60000 ? Math.round(d.history.windowMs / 60000) + ' min' : Math.round(d.history.windowMs / 1000) + ' s';
    fill('dep-state', d.dependencies.map((x) => stateRow(x, d.history.windowMs)), 'no dependencies in the policy');
    try { renderCharts(d); } catch (e) { $('charts').textContent = 'charts failed: ' + e.message; }
    $('problems').textContent = d.problems.length ? 'Could not read: ' + d.problems.join('; ') : '';
    fill('tenants', d.tenants.map((t) => {
      const inflight = t.inFlight ? Object.values(t.inFlight).reduce((a, b) => a + b, 0) : null;
      const tr = row([t.id, t.weight, inflight, t.budget ? bar(t.budget.used, t.budget.limit) : 'no budget', t.budget ? time(t.budget.resetsAt) : '–', t.queued, t.oldestWaitingSeconds === null ? '–' : t.oldestWaitingSeconds + ' s', t.credits ? t.credits.balance + ' (' + t.credits.reserved + ')' : 'no account']);
      tr.dataset.tenant = t.id;
      return tr;
    }), 'no tenants in the policy');
    fill('dead', d.deadLetters.map((x) => row([time(x.deadAt), x.jobId, x.type, x.tenant, x.attempts, x.error || x.lastOutcome])), 'none');
    const changes = new Map(d.policy.recentChanges.filter((c) => c.toVersion !== c.fromVersion).map((c) => [c.toVersion, c.action + (c.target ? ' ' + c.target : '')]));
    fill('history', d.policy.history.map((v) => row([v.version, time(v.createdAt), v.createdBy, changes.get(v.version) || ''])), 'no policy stored yet');
  }

  // The admin API, with the token; a 401 signs out (the token was revoked or changed).
  async function api(method, path) {
    const res = await fetch(path, { method, headers: { authorization: 'Bearer ' + (sessionStorage.getItem(KEY) || '') }, cache: 'no-store' });
    if (res.status === 401) { sessionStorage.removeItem(KEY); showLogin('That token was not accepted.'); throw new Error('not signed in'); }
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    return { status: res.status, ok: res.ok, body };
  }
  const problemText = (r) => (r.body && (r.body.detail || r.body.title)) || 'HTTP ' + r.status;
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');
  const jobsPath = (q) => '/v1/admin/jobs?' + new URLSearchParams(Object.entries(q).filter(([, v]) => v)).toString();

  function jobLink(jobId) {
    const b = el('button', jobId, 'link');
    b.type = 'button';
    b.dataset.open = jobId;
    return b;
  }
  function jobRow(j) {
    const tr = row([when(j.createdAt), jobLink(j.jobId), j.tenant, j.type, el('span', j.status, 'js-' + j.status), j.attempts.length, j.lastError || '']);
    tr.dataset.job = j.jobId;
    tr.children[4].dataset.field = 'status';
    return tr;
  }

  // One job by id (the search, or a click on a listed id): shown until closed, refreshed every 2 s
  // so that a replayed job is seen going through retrying/admitted to its end.
  let shownJob = null;
  let jobTimer;
  async function showJob(jobId) {
    clearTimeout(jobTimer);
    shownJob = jobId;
    let r;
    try { r = await api('GET', '/v1/admin/jobs/' + encodeURIComponent(jobId)); } catch (e) { return; }
    if (shownJob !== jobId) return;
    if (!r.ok) { $('job-detail').hidden = true; $('jobs-error').textContent = r.status === 404 ? 'No job "' + jobId + '".' : 'Could not read the job: ' + problemText(r); shownJob = null; return; }
    $('jobs-error').textContent = '';
    const j = r.body;
    $('jd-id').textContent = j.jobId;
    $('jd-status').replaceChildren(el('span', j.status, 'js-' + j.status));
    $('jd-tenant').textContent = j.tenant;
    $('jd-type').textContent = j.type;
    $('jd-priority').textContent = j.priority;
    $('jd-created').textContent = when(j.createdAt);
    $('jd-notbefore').textContent = when(j.notBefore);
    $('jd-attempts').textContent = String(j.attempts.length);
    $('jd-error').textContent = j.lastError || '–';
    fill('jd-attempt-list', j.attempts.map((a) => row([a.attempt, when(a.admittedAt), a.outcome || 'running', when(a.finishedAt), a.error || ''])), 'none admitted yet');
    $('jd-payload').textContent = j.payload === undefined ? '(none)' : JSON.stringify(j.payload, null, 2);
    $('job-detail').hidden = false;
    jobTimer = setTimeout(() => { if (shownJob === jobId && !$('dashboard').hidden) showJob(jobId); }, 2000);
  }

  // Browse: a page at a time, "More" appends the next (the API's keyset cursor).
  let jobsNext = null;
  async function listJobs(more) {
    const q = { status: $('job-status').value, tenant: $('job-tenant').value.trim(), limit: '25', cursor: more ? jobsNext : '' };
    let r;
    try { r = await api('GET', jobsPath(q)); } catch (e) { return; }
    if (!r.ok) { $('jobs-error').textContent = 'Could not list jobs: ' + problemText(r); return; }
    $('jobs-error').textContent = '';
    const rows = r.body.jobs.map(jobRow);
    const body = $('jobs').querySelector('tbody');
    if (more) body.append(...rows); else fill('jobs', rows, 'no jobs');
    jobsNext = r.body.next;
    $('jobs-more').hidden = !jobsNext;
  }

  // Dead jobs, each with Replay; the first page is refreshed every 5 s unless more were loaded.
  let deadNext = null;
  let deadPaged = false;
  async function loadDead(more) {
    let r;
    try { r = await api('GET', jobsPath({ status: 'dead', limit: '20', cursor: more ? deadNext : '' })); } catch (e) { return; }
    if (!r.ok) return;
    const rows = r.body.jobs.map((j) => {
      const b = el('button', 'Replay');
      b.type = 'button';
      b.dataset.replay = j.jobId;
      const tr = row([when(j.createdAt), jobLink(j.jobId), j.tenant, j.type, j.attempts.length, j.lastError || '', b]);
      tr.dataset.deadJob = j.jobId;
      return tr;
    });
    const body = $('dead-jobs').querySelector('tbody');
    if (more) body.append(...rows); else fill('dead-jobs', rows, 'no dead jobs');
    deadNext = r.body.next;
    deadPaged = Boolean(more);
    $('dead-more').hidden = !deadNext;
  }

  async function replay(jobId, button) {
    button.disabled = true;
    let r;
    try { r = await api('POST', '/v1/admin/jobs/' + encodeURIComponent(jobId) + '/replay'); } catch (e) { return; }
    const msg = $('replay-msg');
    msg.className = r.status === 202 ? 'ok' : 'problems';
    msg.textContent = r.status === 202 ? 'Replayed ' + jobId + ': attempt ' + r.body.attempt + ' waits for admission.' : 'Could not replay ' + jobId + ': ' + problemText(r);
    await loadDead(false);
    // The browse list showed it dead too: read it again (its first page).
    if (!$('jobs').querySelector('tbody').children.length || !jobsNext) listJobs(false);
    showJob(jobId);
  }

  async function pauseOrResume(name, action, button) {
    button.disabled = true;
    let r;
    try { r = await api('POST', '/v1/dependencies/' + encodeURIComponent(name) + '/' + action); } catch (e) { return; }
    if (!r.ok) $('problems').textContent = 'Could not ' + action + ' ' + name + ': ' + problemText(r);
    clearTimeout(timer);
    poll(); // show the new state now, not at the next tick
  }

  // One listener for the buttons of tables that are re-rendered every second.
  document.addEventListener('click', (ev) => {
    const t = ev.target instanceof Element ? ev.target.closest('button') : null;
    if (!t) return;
    if (t.dataset.open) showJob(t.dataset.open);
    else if (t.dataset.replay) replay(t.dataset.replay, t);
    else if (t.dataset.pause) pauseOrResume(t.dataset.pause, t.dataset.action, t);
  });
  $('job-search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = $('job-search').value.trim();
    if (id) showJob(id);
  });
  $('jd-close').addEventListener('click', () => { shownJob = null; clearTimeout(jobTimer); $('job-detail').hidden = true; });
  $('jobs-list').addEventListener('click', () => listJobs(false));
  $('job-status').addEventListener('change', () => listJobs(false));
  $('jobs-more').addEventListener('click', () => listJobs(true));
  $('dead-more').addEventListener('click', () => loadDead(true));

  function showLogin(message) {
    clearTimeout(timer);
    $('dashboard').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
  }

  async function poll() {
    const token = sessionStorage.getItem(KEY);
    if (!token) return showLogin();
    try {
      const res = await fetch('/v1/dashboard', { headers: { authorization: 'Bearer ' + token }, cache: 'no-store' });
      if (res.status === 401) { sessionStorage.removeItem(KEY); return showLogin('That token was not accepted.'); }
      if (res.ok) {
        const first = $('dashboard').hidden;
        render(await res.json());
        $('login').hidden = true;
        $('dashboard').hidden = false;
        if (first) { listJobs(false); loadDead(false); }
        else if (++ticks % 5 === 0 && !deadPaged) loadDead(false);
      }
    } catch (e) { /* keep the last numbers; try again */ }
    timer = setTimeout(poll, 1000);
  }

  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $('token').value.trim());
    $('token').value = '';
    poll();
  });
  $('logout').addEventListener('click', (ev) => { ev.preventDefault(); sessionStorage.removeItem(KEY); showLogin(); });
  poll();
})();
`;
