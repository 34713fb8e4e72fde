import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the mock external API enforces and how it misbehaves (a scenario's `api`). */
export interface MockApiConfig {
  /** Steady calls per second its token bucket refills. */
  readonly ratePerSec: number;
  /** The bucket's size (default: one second of `ratePerSec`). */
  readonly burst?: number;
  /** Calls served at once; one more is answered 429. */
  readonly concurrency: number;
  /** How long a successful call takes. */
  readonly latencyMs: number;
  /** Fraction of admitted calls that fail with a 500 (default 0). */
  readonly failRate?: number;
  /** Windows (seconds from `start`) in which every call fails with a 503 without Retry-After. */
  readonly outages?: readonly { readonly atS: number; readonly forS: number }[];
}

/** Per tenant, per second since `start`: calls that succeeded, were throttled (429), failed (5xx). */
export interface SecondCounts {
  ok: number;
  throttled: number;
  failed: number;
}

export interface MockApiStats {
  /** tenant → one entry per second since start. */
  readonly perTenant: ReadonlyMap<string, readonly SecondCounts[]>;
  /** Most calls in flight at once. */
  readonly maxInFlight: number;
  /** Distinct job ids that called in each second (for retry amplification). */
  readonly jobsPerSecond: readonly ReadonlySet<string>[];
}

/**
 * A strict external API on loopback: a token bucket and a concurrency cap, answering 429 with
 * `Retry-After` (whole seconds, rounded up) over either; optional random failures and full outages.
 * Callers name themselves with `x-tenant` and `x-job` headers; everything is counted per second.
 */
export class MockApi {
  readonly #cfg: MockApiConfig;
  readonly #server: http.Server;
  #tokens: number;
  #refilledAt = 0;
  #inFlight = 0;
  #maxInFlight = 0;
  #startedAt = 0;
  readonly #perTenant = new Map<string, SecondCounts[]>();
  readonly #jobs: Set<string>[] = [];
  readonly #random: () => number;

  constructor(cfg: MockApiConfig, random: () => number = Math.random) {
    this.#cfg = cfg;
    this.#tokens = this.#capacity;
    this.#random = random;
    this.#server = http.createServer((req, res) => this.#handle(req, res));
    this.#server.keepAliveTimeout = 30_000;
  }

  get #capacity(): number {
    return this.#cfg.burst ?? this.#cfg.ratePerSec;
  }

  /** Listens on a free loopback port; the clock of every count starts now (call `reset` to restart it). */
  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.reset();
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Forgets every count, refills the bucket and restarts the clock (outage times count from here). */
  reset(): void {
    this.#startedAt = performance.now();
    this.#refilledAt = this.#startedAt;
    this.#tokens = this.#capacity;
    this.#perTenant.clear();
    this.#jobs.length = 0;
    this.#maxInFlight = this.#inFlight;
  }

  /** Seconds since the clock started. */
  elapsedS(): number {
    return (performance.now() - this.#startedAt) / 1000;
  }

  stats(): MockApiStats {
    return { perTenant: this.#perTenant, maxInFlight: this.#maxInFlight, jobsPerSecond: this.#jobs };
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #count(tenant: string, second: number, what: keyof SecondCounts): void {
    let series = this.#perTenant.get(tenant);
    if (!series) {
      series = [];
      this.#perTenant.set(tenant, series);
    }
    for (let s = series.length; s <= second; s++) series.push({ ok: 0, throttled: 0, failed: 0 });
    series[second]![what] += 1;
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.resume();
    const now = performance.now();
    const t = (now - this.#startedAt) / 1000;
    const second = Math.max(0, Math.floor(t));
    const tenant = String(req.headers['x-tenant'] ?? 'unknown');
    const job = req.headers['x-job'];
    if (typeof job === 'string') {
      for (let s = this.#jobs.length; s <= second; s++) this.#jobs.push(new Set());
      this.#jobs[second]!.add(job);
    }
    if ((this.#cfg.outages ?? []).some((o) => t >= o.atS && t < o.atS + o.forS)) {
      this.#count(tenant, second, 'failed');
      res.writeHead(503, { 'content-type': 'text/plain' }).end('down');
      return;
    }
    // refill
    this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#cfg.ratePerSec);
    this.#refilledAt = now;
    if (this.#inFlight >= this.#cfg.concurrency || this.#tokens < 1) {
      const waitS = this.#inFlight >= this.#cfg.concurrency ? 1 : Math.max(1, Math.ceil((1 - this.#tokens) / this.#cfg.ratePerSec));
      this.#count(tenant, second, 'throttled');
      res.writeHead(429, { 'retry-after': String(waitS), 'content-type': 'text/plain' }).end('slow down');
      return;
    }
    this.#tokens -= 1;
    this.#inFlight += 1;
    if (this.#inFlight > this.#maxInFlight) this.#maxInFlight = this.#inFlight;
    const fail = this.#random() < (this.#cfg.failRate ?? 0);
    setTimeout(() => {
      this.#inFlight -= 1;
      this.#count(tenant, second, fail ? 'failed' : 'ok');
      res.writeHead(fail ? 500 : 200, { 'content-type': 'application/json' }).end(fail ? '{"error":"internal"}' : '{"ok":true}');
    }, this.#cfg.latencyMs);
  }
}
