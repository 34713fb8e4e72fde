import { createRoute } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { JobListResponse, JobStatus, Name } from '@janus/contracts';
import { JOB_PAGE, decodeJobCursor, encodeJobCursor, parseJobStatuses, type JobListQuery, type JobPage } from '@janus/event-store';
import type { TenantVariables } from '../auth.js';
import { bearerSecurity, problemContent, problemResponses, subApp, z, type QueryContext } from '../openapi.js';
import { unavailable } from '../problem.js';

export interface ListRouteDeps {
  readonly requireTenant: MiddlewareHandler<{ Variables: TenantVariables }>;
  /** A page of the tenant's jobs as GET shows them, newest first (persister rows and room-only jobs). */
  readonly listJobs: (tenant: string, query: JobListQuery) => Promise<JobPage>;
}

const DEFAULT_PAGE = JOB_PAGE.default;
const MAX_PAGE = JOB_PAGE.max;

// Plain strings with refinements (no transforms): the route's OpenAPI document shows them as the
// strings they are, and the app's validation hook answers a bad one with 400 naming it.
const ListQuery = z.object({
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
type ListQuery = z.infer<typeof ListQuery>;

const listRoute = createRoute({
  method: 'get',
  path: '/v1/jobs',
  summary: "The tenant's jobs, newest first, with keyset pagination (an extension of the contract)",
  security: bearerSecurity,
  request: { query: ListQuery },
  responses: {
    200: { description: 'A page of jobs, each as `GET /v1/jobs/{jobId}` shows it; `next` is null on the last page', content: { 'application/json': { schema: JobListResponse } } },
    400: { description: 'A bad `status`, `type`, `limit` or `cursor` (problem+json naming it)', content: problemContent },
    401: problemResponses[401],
    403: problemResponses[403],
    503: problemResponses[503],
  },
});

/** `GET /v1/jobs` (docs/api.md): the route only translates; the query is `listJobViews` in @janus/event-store. */
export function listRoutes(deps: ListRouteDeps) {
  const app = subApp();
  app.openapi({ ...listRoute, middleware: [deps.requireTenant] as const }, (c) => list(c) as never);
  async function list(c: QueryContext<ListQuery>): Promise<Response> {
    const q = c.req.valid('query');
    let page: JobPage;
    try {
      page = await deps.listJobs(c.get('tenant'), {
        limit: q.limit,
        statuses: q.status === undefined ? undefined : parseJobStatuses(q.status),
        type: q.type,
        after: q.cursor === undefined ? undefined : decodeJobCursor(q.cursor),
      });
    } catch {
      return unavailable('PostgreSQL is unreachable');
    }
    const body: JobListResponse = { jobs: page.jobs, next: page.next === undefined ? null : encodeJobCursor(page.next) };
    return c.json(body, 200);
  }
  return app;
}
