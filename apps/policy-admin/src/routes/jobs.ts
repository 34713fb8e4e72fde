import { createRoute, z } from '@hono/zod-openapi';
import { JobStatus, JobView, Name, ReplayResponse } from '@janus/contracts';
import type { JobListQuery, JobRecord } from '@janus/event-store';
import { JOB_PAGE, decodeJobCursor, encodeJobCursor, parseJobStatuses, type JobCursor } from '@janus/event-store';
import type { CompiledPolicy } from '@janus/limiter';
import { replayDeadJob, type ReplayAnswer, type ReplayDeps } from '@janus/waiting-room';
import { PROBLEM, notFound, problem, unavailable } from '../problem.js';
import { problems, security, subApp } from './common.js';

export interface AdminJobsDeps {
  /** A page of jobs as GET shows them, newest first (`tenant` undefined: every tenant's), each with its record. */
  readonly list: (tenant: string | undefined, query: JobListQuery) => Promise<{ records: JobRecord[]; next: JobCursor | undefined }>;
  /** Any tenant's job by id, or undefined. */
  readonly get: (jobId: string) => Promise<JobRecord | undefined>;
  /** The running policy; undefined until one is loaded (a replay needs the job type's retry priority). */
  readonly policy: () => CompiledPolicy | undefined;
  /** The room's replay dependencies: `record` looks a job up by id across tenants. */
  readonly replay: ReplayDeps;
  /** Counts an admin's replay (a metric). */
  readonly replayed: (jobType: string) => void;
}

const DEFAULT_PAGE = JOB_PAGE.default;
const MAX_PAGE = JOB_PAGE.max;

/** The admins see whose job it is: the producer's view plus its tenant. */
const AdminJobView = JobView.extend({ tenant: z.string() }).openapi('AdminJobView');
type AdminJobView = z.infer<typeof AdminJobView>;
const AdminJobList = z.object({ jobs: z.array(AdminJobView), next: z.string().nullable() }).openapi('AdminJobList');
type AdminJobList = z.infer<typeof AdminJobList>;

// Plain strings with refinements (no transforms), as the producers' `GET /v1/jobs`: the document shows
// them as strings, and the validation hook answers a bad one with 400 naming it.
const ListQuery = z.object({
  tenant: Name.optional().openapi({ description: "Only this tenant's jobs; every tenant's when absent" }),
  status: z
    .string()
    .refine((s) => parseJobStatuses(s) !== undefined, { message: `a status or a comma-separated list of them: ${JobStatus.options.join(', ')}` })
    .optional()
    .openapi({ description: `Only jobs with this status (as GET shows it), or any of a comma-separated list: ${JobStatus.options.join(', ')}` }),
  type: Name.optional().openapi({ description: 'Only jobs of this job type' }),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE).openapi({ description: `Jobs per page, 1–${MAX_PAGE} (default ${DEFAULT_PAGE})` }),
  cursor: z
    .string()
    .refine((s) => decodeJobCursor(s) !== undefined, { message: 'not a cursor this API issued' })
    .optional()
    .openapi({ description: 'The `next` of the previous page (opaque); absent for the first page' }),
});

// Printable ASCII: anything else cannot be a job id, and a NUL would reach PostgreSQL (a 5xx).
const JOB_ID = /^[\x21-\x7e]{1,200}$/;
const JobParam = z.object({ jobId: z.string().openapi({ param: { name: 'jobId', in: 'path' }, example: '01JQ3Z5V8K2M4N6P8R0T2V4X6Z' }) });

const toAdminView = (r: JobRecord): AdminJobView => ({ ...r.view, tenant: r.tenant });
const dbDown = () => unavailable('PostgreSQL is unreachable');

/**
 * `GET /v1/admin/jobs`, `GET /v1/admin/jobs/{jobId}`, `POST /v1/admin/jobs/{jobId}/replay`
 * (docs/api.md, admin extensions): the producers' job views and replay across tenants. The routes
 * only translate: the queries are @janus/event-store's, the replay is @janus/waiting-room's, the
 * same code the producers' routes run.
 */
export function adminJobRoutes(deps: AdminJobsDeps) {
  const app = subApp();
  const jobNotFound = (jobId: string) => notFound(`no job "${jobId}"`);

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      tags: ['jobs'],
      security,
      summary: "Every tenant's jobs (or one's), newest first, with keyset pagination",
      request: { query: ListQuery },
      responses: {
        200: { description: 'A page of jobs as `GET /v1/jobs/{jobId}` shows them, plus `tenant`; `next` is null on the last page', content: { 'application/json': { schema: AdminJobList } } },
        400: problems[400],
        401: problems[401],
        503: problems[503],
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      let page: Awaited<ReturnType<AdminJobsDeps['list']>>;
      try {
        page = await deps.list(q.tenant, {
          limit: q.limit,
          statuses: q.status === undefined ? undefined : parseJobStatuses(q.status),
          type: q.type,
          after: q.cursor === undefined ? undefined : decodeJobCursor(q.cursor),
        });
      } catch {
        return dbDown();
      }
      const body: AdminJobList = { jobs: page.records.map(toAdminView), next: page.next === undefined ? null : encodeJobCursor(page.next) };
      return c.json(body, 200, { 'cache-control': 'no-store' });
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{jobId}',
      tags: ['jobs'],
      security,
      summary: "Any tenant's job, as its producer's `GET /v1/jobs/{jobId}` shows it, plus `tenant`",
      request: { params: JobParam },
      responses: { 200: { description: 'The job', content: { 'application/json': { schema: AdminJobView } } }, 401: problems[401], 404: problems[404], 503: problems[503] },
    }),
    async (c) => {
      const { jobId } = c.req.valid('param');
      if (!JOB_ID.test(jobId)) return jobNotFound(jobId);
      let record: JobRecord | undefined;
      try {
        record = await deps.get(jobId);
      } catch {
        return dbDown();
      }
      return record === undefined ? jobNotFound(jobId) : c.json(toAdminView(record), 200, { 'cache-control': 'no-store' });
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{jobId}/replay',
      tags: ['jobs'],
      security,
      summary: "Replay any tenant's dead job: a new attempt, admitted like any retry",
      request: { params: JobParam },
      responses: {
        202: { description: "A new attempt waits in the room (status `retrying`); it gets the job type's `maxAttempts` afresh", content: { 'application/json': { schema: ReplayResponse } } },
        401: problems[401],
        404: problems[404],
        409: { description: 'Not dead (`.../not-replayable`, `jobStatus` names its status), for instance already replayed; or its job type is no longer in the policy', content: problems[404].content },
        503: problems[503],
      },
    }),
    async (c) => {
      const { jobId } = c.req.valid('param');
      if (!JOB_ID.test(jobId)) return jobNotFound(jobId);
      const policy = deps.policy();
      if (policy === undefined) return unavailable('the policy is not loaded yet');
      let answer: ReplayAnswer;
      try {
        answer = await replayDeadJob(deps.replay, policy, undefined, jobId);
      } catch {
        return dbDown();
      }
      switch (answer.kind) {
        case 'not_found':
          return jobNotFound(jobId);
        case 'not_replayable':
          return problem(409, PROBLEM.notReplayable, 'Not replayable', { detail: `the job cannot be replayed: ${answer.why}`, extra: { jobStatus: answer.status } });
        case 'replayed': {
          deps.replayed(answer.type);
          const body: ReplayResponse = { jobId, status: 'retrying', attempt: answer.attempt, notBefore: answer.notBefore.toISOString() };
          return c.json(body, 202);
        }
      }
    },
  );

  return app;
}
