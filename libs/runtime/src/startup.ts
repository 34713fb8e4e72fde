import type { ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import type { Registry } from 'prom-client';
import type { Settings } from '@janus/config';
import { PROBLEM_BASE } from '@janus/contracts';
import { checkReadiness, createLogger, createMetricsRegistry, type Logger, type ReadinessCheck } from '@janus/observability';
import { closeServer, listen } from './http.js';
import { Shutdown } from './shutdown.js';

type Fetch = Hono['fetch'];

/** How long a SIGTERM while starting waits for the start to give up (connection attempts are short). */
const GIVE_UP_MS = 5_000;

/**
 * An app's start, served from its first moment (CONTRACT §1): `Startup.listen` binds the app's port
 * at once with `/healthz` (200), `/readyz` (503, naming the connections still down) and `/metrics`;
 * every other request is 503 — nothing is taken before the app has started. `start()` runs the app's
 * start function (which, given this Startup, keeps connecting to NATS and PostgreSQL until they
 * answer: see `untilReachable`) and then serves the app on the same port. SIGTERM/SIGINT while
 * starting gives the start up and exits cleanly; after it, the app's own shutdown steps run (the
 * Shutdown is installed here; main.ts adds its steps once started).
 */
export class Startup {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly shutdown: Shutdown;
  readonly #controller = new AbortController();
  readonly #checks: ReadinessCheck[] = [];
  #fetch: Fetch;
  #server: ServerType | undefined;
  #starting: Promise<{ close(): Promise<void> }> | undefined;
  #started = false;

  readonly #app: string;

  private constructor(app: string, settings: Settings) {
    this.#app = app;
    this.logger = createLogger(app, settings);
    this.registry = createMetricsRegistry(app);
    this.shutdown = new Shutdown(this.logger).add('give up starting', () => this.#giveUp());
    this.#fetch = this.#startingApp().fetch;
  }

  /** Listens on `settings.host`:`port` with the starting routes and installs the shutdown. */
  static async listen(opts: { app: string; settings: Settings; port: number }): Promise<Startup> {
    const startup = new Startup(opts.app, opts.settings);
    startup.#server = await listen({ fetch: (...args: Parameters<Fetch>) => startup.#fetch(...args) }, { host: opts.settings.host, port: opts.port }, startup.logger);
    startup.shutdown.install();
    return startup;
  }

  /** Aborted by SIGTERM/SIGINT while starting: connection attempts stop. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get server(): ServerType {
    if (!this.#server) throw new Error('not listening');
    return this.#server;
  }

  /** A connection the start waits for or holds: `/readyz` names it while it is down during the start. */
  watch(check: ReadinessCheck): void {
    this.#checks.push(check);
  }

  /**
   * Runs the app's start, then serves `app(started)` on the port. Rejects as the start does, except
   * when a signal ended the start: then the shutdown exits the process and this never resolves.
   */
  async start<T extends { close(): Promise<void> }>(start: () => Promise<T>, app: (started: T) => { fetch: Fetch }): Promise<T> {
    const starting = start();
    this.#starting = starting;
    let started: T;
    try {
      started = await starting;
    } catch (error) {
      if (this.signal.aborted) return new Promise<never>(() => undefined);
      // A fault no retry mends (a refused login, an untrusted certificate, a failed migration): one
      // line naming what to fix, and exit 1 — not an unhandled rejection's stack trace.
      const why = startFailure(error);
      this.logger.fatal({ err: error }, `could not start: ${why}`);
      process.stderr.write(`${this.#app}: could not start: ${why}\n`);
      if (this.#server) await closeServer(this.#server).catch(() => undefined);
      process.exit(1);
    }
    // A signal during the last steps: the shutdown closes what started.
    if (this.signal.aborted) return new Promise<never>(() => undefined);
    this.#fetch = app(started).fetch;
    this.#started = true;
    this.logger.info('started');
    return started;
  }

  async #giveUp(): Promise<void> {
    if (this.#started) return;
    this.#controller.abort();
    let timer: NodeJS.Timeout | undefined;
    const started = await Promise.race([
      this.#starting?.catch(() => undefined),
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), GIVE_UP_MS))),
    ]);
    clearTimeout(timer);
    await started?.close();
    if (this.#server) await closeServer(this.#server);
  }

  /** `/healthz`, `/readyz` (always 503 while starting) and `/metrics`; 503 for everything else. */
  #startingApp(): Hono {
    const app = new Hono();
    app.get('/healthz', (c) => c.json({ status: 'ok' }, 200));
    app.get('/readyz', async (c) => {
      const report = await checkReadiness(this.#checks);
      const reason = report.down.length > 0 ? `starting: ${report.down.join(', ')} unavailable` : 'starting';
      return c.json({ status: 'starting', reason, down: report.down, checks: report.checks }, 503);
    });
    app.get('/metrics', async (c) => c.body(await this.registry.metrics(), 200, { 'content-type': this.registry.contentType }));
    app.all('*', () => {
      const problem = { type: `${PROBLEM_BASE}/service-unavailable`, title: 'Service Unavailable', status: 503, detail: 'starting: not taking requests yet (GET /readyz says what it waits for)', errors: [] };
      return new Response(JSON.stringify(problem), { status: 503, headers: { 'content-type': 'application/problem+json', 'retry-after': '1' } });
    });
    return app;
  }
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED']);

/**
 * Whether an error says the service cannot be reached (yet), as opposed to refusing us (a bad
 * password, an untrusted certificate, a failed migration): the network errors, PostgreSQL's
 * connection errors (class 08, 57P0x: starting or shutting down, 53300: too many connections) and a
 * connection it dropped, and nats.js's connection errors and timeouts.
 */
export function isUnreachable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const walk = (e: unknown): boolean => {
    if (!(e instanceof Error) || seen.has(e)) return false;
    seen.add(e);
    const { code } = e as { code?: unknown };
    if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || /^(08...|57P0.|53300)$/.test(code))) return true;
    if (/^Connection terminated|timeout expired/i.test(e.message)) return true;
    if (['ConnectionError', 'TimeoutError'].includes(e.name) && !/tls|certificate|authori[sz]ation|authentication/i.test(e.message)) return true;
    return walk(e.cause) || (e instanceof AggregateError && e.errors.some(walk));
  };
  return walk(error);
}

/** What stopped a start, naming the variable to look at when a service refused the login. */
export function startFailure(error: unknown): string {
  const text = describe(error);
  if (/authori[sz]ation violation|authentication (failed|timeout)|user authentication/i.test(text) && /nats|authorization/i.test(`${(error as Error).name} ${text}`)) {
    return `NATS refused the login (check NATS_USER and NATS_PASSWORD): ${text}`;
  }
  if (/password authentication failed|no pg_hba\.conf entry|SASL/i.test(text)) return `PostgreSQL refused the login (check DATABASE_URL): ${text}`;
  if (/WRONGPASS|NOAUTH|invalid username-password/i.test(text)) return `Redis refused the login (check REDIS_URL): ${text}`;
  return text;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error && error.cause.message !== error.message ? ` (${error.cause.message})` : '';
  return `${error.message || error.name}${cause}`;
}

const BACKOFF = { firstMs: 250, maxMs: 5_000 };

/**
 * Runs `attempt` until it succeeds. With `retry`, an error that says the service cannot be reached
 * (isUnreachable) is logged as one line and tried again after a backoff (250 ms doubling to 5 s,
 * ±20 %) until `signal` aborts; any other error rejects at once, as does every error without `retry`.
 */
export async function untilReachable<T>(
  what: string,
  attempt: () => Promise<T>,
  opts: { retry: boolean; logger: Logger; signal?: AbortSignal },
): Promise<T> {
  for (let tries = 1; ; tries++) {
    opts.signal?.throwIfAborted();
    try {
      const value = await attempt();
      if (tries > 1) opts.logger.info({ tries }, `${what} reachable`);
      return value;
    } catch (error) {
      if (!opts.retry || !isUnreachable(error) || opts.signal?.aborted) throw error;
      const delayMs = Math.round(Math.min(BACKOFF.maxMs, BACKOFF.firstMs * 2 ** (tries - 1)) * (0.8 + Math.random() * 0.4));
      opts.logger.warn({ error: describe(error), tries, retryInMs: delayMs }, `${what} not reachable yet; retrying`);
      await sleep(delayMs, opts.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
