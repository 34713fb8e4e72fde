import { createRoute } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { ReplayResponse } from '@janus/contracts';
import type { CompiledPolicy } from '@janus/limiter';
import type { TenantVariables } from '../auth.js';
import { isJobId } from '../ids.js';
import type { IngressMetrics } from '../metrics.js';
import { replayDeadJob, type ReplayAnswer, type ReplayDeps } from '@janus/waiting-room';
import { bearerSecurity, problemContent, problemResponses, subApp, z, type ParamContext } from '../openapi.js';
import { PROBLEM, problem, unavailable } from '../problem.js';

export interface ReplayRouteDeps {
  readonly requireTenant: MiddlewareHandler<{ Variables: TenantVariables }>;
  readonly policy: () => CompiledPolicy | undefined;
  readonly metrics: IngressMetrics;
  /** Undefined without a waiting room: a replay waits there, so none can be made. */
  readonly replay: ReplayDeps | undefined;
}

const replayRoute = createRoute({
  method: 'post',
  path: '/v1/jobs/{jobId}/replay',
  summary: "Replay the tenant's own dead job: a new attempt, admitted like any retry (an extension of the contract)",
  security: bearerSecurity,
  request: { params: z.object({ jobId: z.string().openapi({ description: 'The job id answered at submission' }) }) },
  responses: {
    202: { description: 'A new attempt waits in the room (status `retrying`, as GET now shows it); it gets the job type\'s `maxAttempts` afresh', content: { 'application/json': { schema: ReplayResponse } } },
    401: problemResponses[401],
    403: problemResponses[403],
    404: { description: 'No such job for this tenant', content: problemContent },
    409: { description: 'Not dead (`.../not-replayable`, `detail` names its status), for instance already replayed; or its job type is no longer in the policy', content: problemContent },
    503: problemResponses[503],
  },
});

/** `POST /v1/jobs/{jobId}/replay` (docs/api.md): the route only translates; the replay is `replayDeadJob`. */
export function replayRoutes(deps: ReplayRouteDeps) {
  const app = subApp();
  app.openapi({ ...replayRoute, middleware: [deps.requireTenant] as const }, (c) => replay(c) as never);
  async function replay(c: ParamContext<{ jobId: string }>): Promise<Response> {
    const { jobId } = c.req.valid('param');
    const notFound = () => problem(404, PROBLEM.notFound, 'Job not found', { detail: `no job "${jobId}" for this tenant` });
    // An id Janus could not have issued is not found, without a lookup (as GET).
    if (!isJobId(jobId)) return notFound();
    const policy = deps.policy();
    if (policy === undefined) return unavailable('the policy is not loaded yet');
    if (deps.replay === undefined) return unavailable('the waiting room is not configured');
    let answer: ReplayAnswer;
    try {
      answer = await replayDeadJob(deps.replay, policy, c.get('tenant'), jobId);
    } catch {
      return unavailable('PostgreSQL is unreachable');
    }
    switch (answer.kind) {
      case 'not_found':
        return notFound();
      case 'not_replayable':
        return problem(409, PROBLEM.notReplayable, 'Not replayable', { detail: `the job cannot be replayed: ${answer.why}`, extra: { jobStatus: answer.status } });
      case 'replayed': {
        deps.metrics.replays.inc({ job_type: answer.type });
        const body: ReplayResponse = { jobId, status: 'retrying', attempt: answer.attempt, notBefore: answer.notBefore.toISOString() };
        return c.json(body, 202);
      }
    }
  }
  return app;
}
