/**
 * The dashboard: one static page and one script. The admin token is entered in a form, kept in
 * sessionStorage (gone with the tab) and sent as Bearer to `GET /v1/dashboard` once a second.
 * Everything is rendered with textContent (dead-letter errors are arbitrary text).
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Janus policy admin</title>
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
      <table id="tenants"><thead><tr><th>tenant</th><th>weight</th><th>in flight</th><th>budget used / limit</th><th>resets</th><th>queued</th><th>oldest waiting</th></tr></thead><tbody></tbody></table>
    </section>
    <section class="wide"><h2>Dependency state <span class="muted">adaptive limits, outage circuit, retry budget; chart: <span class="k-ratio">effective ratio</span> and <span class="k-inflight">in flight</span>, last <span id="history-window">10 min</span></span></h2>
      <table id="dep-state"><thead><tr><th>dependency</th><th>declared rate</th><th>effective rate (ratio)</th><th>cooldown until</th><th>circuit</th><th>in flight</th><th>retries / allowed (10 s)</th><th>recent</th></tr></thead><tbody></tbody></table>
    </section>
    <section><h2>Recent dead letters</h2>
      <table id="dead"><thead><tr><th>when</th><th>job</th><th>type</th><th>tenant</th><th>attempts</th><th>last error</th></tr></thead><tbody></tbody></table>
    </section>
    <section><h2>Policy history</h2>
      <table id="history"><thead><tr><th>version</th><th>when</th><th>by</th><th>change</th></tr></thead><tbody></tbody></table>
    </section>
  </main>
</div>
<script src="/dashboard/app.js"></script>
</body>
</html>
`;

export const DASHBOARD_JS = `(() => {
  'use strict';
  const KEY = 'janusAdminToken';
  const $ = (id) => document.getElementById(id);
  let timer;

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

  function stateRow(x, windowMs) {
    const s = x.state;
    if (!s) { const tr = row([x.name, '–', '–', '–', '–', '–', '–', '–']); tr.dataset.depState = x.name; return tr; }
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
    ]);
    tr.dataset.depState = x.name;
    ['name', 'declared', 'effective', 'cooldown', 'circuit', 'inflight', 'retry-budget', 'chart'].forEach((f, i) => { tr.children[i].dataset.field = f; });
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
    $('problems').textContent = d.problems.length ? 'Could not read: ' + d.problems.join('; ') : '';
    fill('tenants', d.tenants.map((t) => {
      const inflight = t.inFlight ? Object.values(t.inFlight).reduce((a, b) => a + b, 0) : null;
      const tr = row([t.id, t.weight, inflight, t.budget ? bar(t.budget.used, t.budget.limit) : 'no budget', t.budget ? time(t.budget.resetsAt) : '–', t.queued, t.oldestWaitingSeconds === null ? '–' : t.oldestWaitingSeconds + ' s']);
      tr.dataset.tenant = t.id;
      return tr;
    }), 'no tenants in the policy');
    fill('dead', d.deadLetters.map((x) => row([time(x.deadAt), x.jobId, x.type, x.tenant, x.attempts, x.error || x.lastOutcome])), 'none');
    const changes = new Map(d.policy.recentChanges.filter((c) => c.toVersion !== c.fromVersion).map((c) => [c.toVersion, c.action + (c.target ? ' ' + c.target : '')]));
    fill('history', d.policy.history.map((v) => row([v.version, time(v.createdAt), v.createdBy, changes.get(v.version) || ''])), 'no policy stored yet');
  }

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
      if (res.ok) { render(await res.json()); $('login').hidden = true; $('dashboard').hidden = false; }
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
