import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { BatchJobRequest, JobRequest, MAX_PAYLOAD_DEPTH, ProblemDetails, refinePayload } from '@janus/contracts';
import { validationHook, type JsonBodyEnv } from '@janus/http';
import type { TenantVariables } from './auth.js';

/** `body`: the parsed JSON body (jsonBody); routes read it through their zod validator. */
export type IngressEnv = { Variables: TenantVariables & JsonBodyEnv['Variables'] };

/** One sub-app per resource; zod failures of any validator become problem+json 400 with every bad field. */
export function subApp(): OpenAPIHono<IngressEnv> {
  return new OpenAPIHono<IngressEnv>({ defaultHook: validationHook });
}

export const problemContent = { 'application/problem+json': { schema: ProblemDetails } };

export const problemResponses = {
  400: { description: 'Malformed body or invalid field (problem+json with `errors`)', content: problemContent },
  401: { description: 'Missing, unknown or revoked credentials', content: problemContent },
  403: { description: 'The key is valid but its tenant is not in the running policy', content: problemContent },
  415: { description: 'The body is not JSON', content: problemContent },
  503: { description: 'Redis or JetStream unreachable (fail-closed): nothing admitted, nothing consumed', content: problemContent },
} as const;

export const bearerSecurity = [{ apiKey: [] }];

export { z };

/** Handlers are written against these and registered with `(c) => handler(c) as never`: they answer
 * problem+json and JSON bodies whose union the route's typed-response check cannot express. */
export type JsonContext<T> = Context<IngressEnv, string, { out: { json: T } }>;
export type JsonParamContext<T, P> = Context<IngressEnv, string, { out: { json: T; param: P } }>;
export type ParamContext<P> = Context<IngressEnv, string, { out: { param: P } }>;
export type QueryContext<Q> = Context<IngressEnv, string, { out: { query: Q } }>;

// zod's recursive `z.json()` sends the OpenAPI generator into endless recursion. A body comes from
// JSON.parse, so any payload it holds is JSON already: only check that Janus can carry and store it
// (nesting depth, no U+0000), without recursion, and document it so.
const AnyJson = z.unknown().superRefine(refinePayload).openapi({ description: `any JSON value nested at most ${MAX_PAYLOAD_DEPTH} levels deep, without U+0000 (NUL) in a string or key` });
export const JobRequestBody = JobRequest.extend({ payload: AnyJson.optional() });
export type JobRequestBody = z.infer<typeof JobRequestBody>;
export const BatchRequestBody = z.strictObject({
  jobs: z.array(BatchJobRequest.extend({ payload: AnyJson.optional() })).min(1).max(1000),
});
export type BatchRequestBody = z.infer<typeof BatchRequestBody>;
