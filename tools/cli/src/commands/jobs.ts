import type { JanusClient, JobStatus, JobView, JsonValue, ListQuery, ReplayBody } from '@janus/client';
import { intOption, oneOf, parse } from '../args.js';
import { CliFailure, EXIT, UsageError, readStdin, type CliIo, type Output } from '../io.js';
import { calling, producerClient, refusal } from '../producer.js';

/** `janus jobs …` and `janus dead …`: the producer API (CONTRACT §3 and the extensions of docs/api.md). */
export const JOBS_USAGE = `usage: janus jobs <command> [--json]
  submit <type> [--payload <json|->] [--priority high|normal|low] [--mode now|queue]
                [--idempotency-key <key>] [--cost <n>]
                                     submit a job (exit 1 when rejected: --json prints the 429 body)
  get <id>                           the job: status, attempts, payload, last error
  list [--status <s>[,<s>…]] [--type <t>] [--limit <n>] [--cursor <c>] [--all]
                                     the tenant's jobs, newest first (--all: every page)
  cancel <id>                        cancel a job still waiting (exit 1: 404, or 409 not cancellable)
  replay <id>                        a dead job's new attempt (exit 1: 404, or 409 not replayable)
statuses: queued, admitted, succeeded, retrying, dead, cancelled
env: JANUS_URL (default http://127.0.0.1:8080), JANUS_API_KEY (required)`;

export const DEAD_USAGE = `usage: janus dead <command> [--json]
  list [--type <t>] [--limit <n>] [--cursor <c>] [--all]
                                     the tenant's dead jobs (janus jobs list --status dead)
  replay <id> | --all                replay one dead job, or every dead job of the tenant
                                     (--all: exit 1 if any could not be replayed)
env: JANUS_URL (default http://127.0.0.1:8080), JANUS_API_KEY (required)`;

const STATUSES: readonly JobStatus[] = ['queued', 'admitted', 'succeeded', 'retrying', 'dead', 'cancelled'];
const LIST_OPTIONS = { type: { type: 'string' }, limit: { type: 'string' }, cursor: { type: 'string' }, all: { type: 'boolean' } } as const;

export async function jobsCommand(sub: string | undefined, argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  switch (sub) {
    case 'submit':
      return submit(argv, io, out);
    case 'get': {
      const { positionals } = parse(argv, {}, { names: ['id'] });
      const id = positionals[0] ?? '';
      const { client, url } = producerClient(io);
      const job = await calling(url, () => client.get(id));
      if (job === undefined) {
        const problem = { type: 'https://janus.dev/problems/not-found', title: 'Not Found', status: 404, detail: `no job "${id}" for this tenant (or not stored yet: the view lags by about a second)` };
        throw refusal(`job ${id}`, problem);
      }
      out.result(job, () => printJob(out, job));
      return;
    }
    case 'list': {
      const { values } = parse(argv, { ...LIST_OPTIONS, status: { type: 'string' } }, { names: [] });
      const status = values.status?.split(',').map((s) => oneOf('status', s.trim(), STATUSES));
      return list(io, out, { ...listQuery(values), ...(status !== undefined ? { status } : {}) }, values.all === true);
    }
    case 'cancel': {
      const { positionals } = parse(argv, {}, { names: ['id'] });
      const id = positionals[0] ?? '';
      const { client, url } = producerClient(io);
      const result = await calling(url, () => client.cancel(id));
      if (result.kind !== 'cancelled') throw refusal(`job ${id} not cancelled`, result.problem);
      out.result({ jobId: id, status: 'cancelled' }, () => out.line(`cancelled ${id}`));
      return;
    }
    case 'replay': {
      const { positionals } = parse(argv, {}, { names: ['id'] });
      const id = positionals[0] ?? '';
      const { client, url } = producerClient(io);
      const body = await replayOne(client, url, id);
      out.result(body, () => out.line(replayedLine(body)));
      return;
    }
    default:
      throw new UsageError(sub === undefined ? 'jobs needs a command' : `unknown command "jobs ${sub}"`);
  }
}

export async function deadCommand(sub: string | undefined, argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  switch (sub) {
    case 'list': {
      const { values } = parse(argv, LIST_OPTIONS, { names: [] });
      return list(io, out, { ...listQuery(values), status: 'dead' }, values.all === true);
    }
    case 'replay': {
      const { values, positionals } = parse(argv, { all: { type: 'boolean' } }, { names: ['id'], optional: 1 });
      const id = positionals[0];
      if ((id === undefined) === (values.all !== true)) throw new UsageError('dead replay needs a job id or --all (not both)');
      const { client, url } = producerClient(io);
      if (id !== undefined) {
        const body = await replayOne(client, url, id);
        out.result(body, () => out.line(replayedLine(body)));
        return;
      }
      return replayAll(client, url, out);
    }
    default:
      throw new UsageError(sub === undefined ? 'dead needs a command' : `unknown command "dead ${sub}"`);
  }
}

async function submit(argv: readonly string[], io: CliIo, out: Output): Promise<void> {
  const { values, positionals } = parse(
    argv,
    { payload: { type: 'string' }, priority: { type: 'string' }, mode: { type: 'string' }, 'idempotency-key': { type: 'string' }, cost: { type: 'string' } },
    { names: ['type'] },
  );
  const type = positionals[0] ?? '';
  const priority = oneOf('priority', values.priority, ['high', 'normal', 'low'] as const);
  const mode = oneOf('mode', values.mode, ['now', 'queue'] as const);
  const cost = intOption('cost', values.cost);
  const payload = values.payload === undefined ? undefined : parsePayload(values.payload === '-' ? await (io.readStdin ?? readStdin)() : values.payload);
  const key = values['idempotency-key'];
  const { client, url } = producerClient(io);
  const result = await calling(url, () =>
    client.submit(
      { type, ...(payload !== undefined ? { payload } : {}), ...(priority ? { priority } : {}), ...(cost !== undefined ? { cost } : {}) },
      { ...(key !== undefined ? { idempotencyKey: key } : {}), ...(mode ? { mode } : {}) },
    ),
  );
  switch (result.kind) {
    case 'admitted':
      out.result(result.body, () => out.line(`admitted ${result.body.jobId} (attempt ${result.body.attempt})${result.body.duplicate === true ? ' — the answer to an earlier request with this key' : ''}`));
      return;
    case 'queued':
      out.result(result.body, () => out.line(`queued ${result.body.jobId}, not before ${result.body.notBefore}${result.body.duplicate === true ? ' — the answer to an earlier request with this key' : ''}`));
      return;
    case 'rejected':
      throw new CliFailure(EXIT.refused, `rejected: ${result.reason}; the same request could pass in ${result.retryAfterMs} ms`, mode === 'queue' ? [] : ['(--mode queue waits in Janus instead)'], result.body);
    case 'in_progress':
      throw refusal('not submitted', result.problem, result.problem, [`a request with this idempotency key is still being admitted: send it again in ${result.retryAfterMs} ms`]);
    case 'exceeds_capacity': {
      const l = result.limit;
      const extra = l ? [`limit: ${l.scope}${l.dependency ? ` ${l.dependency}` : ''}${l.tenant ? ` ${l.tenant}` : ''} ${l.kind}, capacity ${l.capacity}, requested ${l.requested}`] : [];
      throw refusal('not submitted', result.problem, result.problem, extra);
    }
    case 'invalid':
    case 'unavailable':
      throw refusal('not submitted', result.problem);
  }
}

function parsePayload(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    throw new UsageError(`--payload is not JSON: ${(error as Error).message}`);
  }
}

function listQuery(values: { type?: string | undefined; limit?: string | undefined; cursor?: string | undefined; all?: boolean | undefined }): ListQuery {
  if (values.all === true && values.cursor !== undefined) throw new UsageError('--all reads every page from the first: it takes no --cursor');
  const limit = intOption('limit', values.limit);
  return {
    ...(values.type !== undefined ? { type: values.type } : {}),
    ...(limit !== undefined ? { limit } : {}),
    ...(values.cursor !== undefined ? { cursor: values.cursor } : {}),
  };
}

async function list(io: CliIo, out: Output, query: ListQuery, all: boolean): Promise<void> {
  const { client, url } = producerClient(io);
  let page: { jobs: JobView[]; next: string | null };
  if (all) {
    const jobs: JobView[] = [];
    await calling(url, async () => {
      for await (const job of client.listAll(query)) jobs.push(job);
    });
    page = { jobs, next: null };
  } else {
    page = await calling(url, () => client.list(query));
  }
  out.result(page, () => {
    out.table(
      ['JOB', 'TYPE', 'STATUS', 'PRIORITY', 'ATTEMPTS', 'CREATED'],
      page.jobs.map((j) => [j.jobId, j.type, j.status, j.priority, String(j.attempts.length), j.createdAt]),
      'no jobs',
    );
    if (page.next !== null) out.line(`more: --cursor ${page.next}`);
  });
}

function printJob(out: Output, job: JobView): void {
  out.fields([
    ['job', job.jobId],
    ['type', job.type],
    ['status', job.status],
    ['priority', job.priority],
    ['created', job.createdAt],
    ['not before', job.notBefore],
    ['last error', job.lastError],
    ['payload', job.payload === undefined ? undefined : JSON.stringify(job.payload)],
  ]);
  if (job.attempts.length === 0) return;
  out.line('attempts:');
  out.table(
    ['#', 'ADMITTED', 'OUTCOME', 'FINISHED', 'ERROR'],
    job.attempts.map((a) => [String(a.attempt), a.admittedAt, a.outcome ?? '-', a.finishedAt ?? '-', a.error ?? '']),
    '',
    '  ',
  );
}

async function replayOne(client: JanusClient, url: string, id: string): Promise<ReplayBody> {
  const result = await calling(url, () => client.replay(id));
  if (result.kind === 'replayed') return result.body;
  throw refusal(`job ${id} not replayed`, result.problem);
}

const replayedLine = (b: ReplayBody) => `replayed ${b.jobId}: attempt ${b.attempt} ${b.status}, not before ${b.notBefore}`;

/**
 * Every dead job of the tenant: their ids first (replaying while paging would move jobs out of the
 * filter under the cursor), then one replay each. A refusal (replayed meanwhile by someone else) is
 * reported and the rest go on; a fault (Janus gone, 503) stops, exit 3.
 */
async function replayAll(client: JanusClient, url: string, out: Output): Promise<void> {
  const ids: string[] = [];
  await calling(url, async () => {
    for await (const job of client.listAll({ status: 'dead', limit: 500 })) ids.push(job.jobId);
  });
  const replayed: ReplayBody[] = [];
  const refused: { jobId: string; problem: unknown }[] = [];
  for (const id of ids) {
    const result = await calling(url, () => client.replay(id));
    if (result.kind === 'replayed') {
      replayed.push(result.body);
      if (!out.json) out.line(replayedLine(result.body));
    } else if (result.kind === 'unavailable') {
      throw refusal(`stopped after ${replayed.length} of ${ids.length} replays`, result.problem, { replayed, refused, problem: result.problem });
    } else {
      refused.push({ jobId: id, problem: result.problem });
      out.note(`job ${id} not replayed: ${result.problem.detail ?? result.problem.title}`);
    }
  }
  const summary = { replayed, refused };
  if (refused.length > 0) throw new CliFailure(EXIT.refused, `${refused.length} of ${ids.length} dead jobs not replayed`, [], summary);
  out.result(summary, () => out.line(ids.length === 0 ? 'no dead jobs' : `replayed ${replayed.length} dead job${replayed.length === 1 ? '' : 's'}`));
}
