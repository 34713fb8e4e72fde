import { createRoute, z } from '@hono/zod-openapi';
import { NAME_PATTERN, POLICY_BOUNDS, zodFieldErrors } from '@janus/contracts';
import { StateLost, StoreUnavailable, type Limiter, type PauseState, type PauseTarget } from '@janus/limiter';
import { jsonBody } from '../http.js';
import { invalidRequest, notFound, unavailable } from '../problem.js';
import { problems, security, subApp } from './common.js';

const PauseBody = z.strictObject({ until: z.iso.datetime({ offset: true }).optional() });
const Param = z.object({
  name: z
    .string()
    .regex(NAME_PATTERN, `must match ${NAME_PATTERN.source}`)
    .openapi({ param: { name: 'name', in: 'path' }, example: 'stripe' }),
});
const PauseResponse = z
  .object({
    paused: z.boolean(),
    until: z.string().nullable().openapi({ description: 'ISO time the pause ends; null: until resumed (or not paused)' }),
  })
  .openapi('PauseState');

export interface PauseDeps {
  readonly limiter: Pick<Limiter, 'pause' | 'resume' | 'pauseState'>;
  readonly policyLoaded: () => boolean;
  /** After a resume: wake the waiting room (its jobs of the target may go now). */
  readonly resumed: () => void;
  /** Records a pause or a resume in the audit log (`GET /v1/audit`: who changed what, when). */
  readonly audit: (entry: PauseAudit) => Promise<void>;
}

export interface PauseAudit {
  readonly actor: string;
  readonly action: 'dependency.pause' | 'dependency.resume' | 'job-type.pause' | 'job-type.resume';
  /** `dependencies/<name>` or `job-types/<name>` */
  readonly target: string;
  /** The pause as it stands afterwards. */
  readonly state: { readonly paused: boolean; readonly until: string | null };
}

/**
 * `POST /{name}/pause` `{ "until"?: ISO time }`, `POST /{name}/resume`, `GET /{name}/pause` under
 * `/v1/dependencies` and `/v1/job-types` (CONTRACT §5 v1.1): hold admission of the dependency's or
 * job type's jobs — mode `queue` jobs wait in the room, mode `now` gets 429 `paused` — for every
 * instance at once (the limiter's guard in Redis), until resumed or `until`.
 */
export function pauseRoutes(what: 'dependency' | 'jobType', deps: PauseDeps) {
  const app = subApp();
  const tag = what === 'dependency' ? 'dependencies' : 'job-types';
  const label = what === 'dependency' ? 'dependency' : 'job type';
  const target = (name: string): PauseTarget => (what === 'dependency' ? { dependency: name } : { jobType: name });
  const view = (name: string, s: PauseState) => ({
    [what]: name,
    paused: s.paused,
    until: s.paused && Number.isFinite(s.until) ? new Date(s.until).toISOString() : null,
  });
  /** Runs a limiter call: 503 while the store or the policy is not there, 404 for an unknown name. */
  const run = async (name: string, op: () => Promise<PauseState | undefined>): Promise<Response | { state: PauseState }> => {
    if (!deps.policyLoaded()) return unavailable('the policy is not loaded yet');
    let state: PauseState | undefined;
    try {
      state = await op();
    } catch (error) {
      if (error instanceof StoreUnavailable || error instanceof StateLost) return unavailable(error.message);
      throw error;
    }
    return state === undefined ? notFound(`${label} "${name}" does not exist`) : { state };
  };
  /**
   * The pause applies from here on (Redis holds it); recording it can fail on its own: 503, and a
   * retry (pause and resume are idempotent) records it then.
   */
  const audited = async (actor: string, action: 'pause' | 'resume', name: string, s: PauseState): Promise<Response | undefined> => {
    const { paused, until } = view(name, s);
    try {
      await deps.audit({ actor, action: `${what === 'dependency' ? 'dependency' : 'job-type'}.${action}`, target: `${tag}/${name}`, state: { paused, until } });
      return undefined;
    } catch {
      return unavailable(`the ${label} is ${action === 'pause' ? 'paused' : 'resumed'}, but the audit log could not record it: try again`);
    }
  };
  const responses = { 200: { description: 'The pause as it stands', content: { 'application/json': { schema: PauseResponse } } }, 400: problems[400], 401: problems[401], 404: problems[404], 503: problems[503] };

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{name}/pause',
      tags: [tag],
      security,
      summary: `Pause a ${label}: its jobs wait (mode queue) or get 429 paused (mode now) until resumed or until`,
      middleware: [jsonBody({ optional: true })] as const,
      request: { params: Param, body: { required: false, content: { 'application/json': { schema: PauseBody } } } },
      responses: { ...responses, 415: problems[415] },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      // an empty body is no `until` (the route's validator has checked a present one: 400 naming the field)
      const body = PauseBody.safeParse(c.get('body') ?? {});
      if (!body.success) return invalidRequest(zodFieldErrors(body.error.issues));
      const until = body.data.until === undefined ? undefined : Date.parse(body.data.until);
      // At most POLICY_BOUNDS.maxDurationMs (10 years) ahead, as every duration of the policy: the
      // limiter's and the answers' date arithmetic stays valid (until resumed: no `until`).
      // A time already past would end the pause at once: a pause request must not act as a resume.
      if (until !== undefined && until <= Date.now()) {
        return invalidRequest([{ path: 'until', message: 'must be in the future; POST …/resume ends a pause' }]);
      }
      if (until !== undefined && !(until <= Date.now() + POLICY_BOUNDS.maxDurationMs)) {
        return invalidRequest([{ path: 'until', message: `must be at most ${POLICY_BOUNDS.maxDurationMs} ms (10 years) from now; omit it to pause until resumed` }]);
      }
      const r = await run(name, () => deps.limiter.pause(target(name), until));
      if (r instanceof Response) return r;
      return (await audited(c.get('actor'), 'pause', name, r.state)) ?? c.json(view(name, r.state), 200);
    },
  );
  app.openapi(
    createRoute({ method: 'post', path: '/{name}/resume', tags: [tag], security, summary: `Resume a paused ${label}`, request: { params: Param }, responses }),
    async (c) => {
      const { name } = c.req.valid('param');
      const r = await run(name, () => deps.limiter.resume(target(name)));
      if (r instanceof Response) return r;
      deps.resumed();
      return (await audited(c.get('actor'), 'resume', name, r.state)) ?? c.json(view(name, r.state), 200);
    },
  );
  app.openapi(
    createRoute({ method: 'get', path: '/{name}/pause', tags: [tag], security, summary: `Whether a ${label} is paused`, request: { params: Param }, responses }),
    async (c) => {
      const { name } = c.req.valid('param');
      const r = await run(name, () => deps.limiter.pauseState(target(name)));
      return r instanceof Response ? r : c.json(view(name, r.state), 200, { 'cache-control': 'no-store' });
    },
  );
  return app;
}
