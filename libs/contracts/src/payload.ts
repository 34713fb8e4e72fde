import { z } from 'zod';

/**
 * The deepest a job payload may nest (arrays and objects; a scalar payload is depth 0, `[]` or
 * `{}` is depth 1). Deeper payloads are refused at the edge: serializing and validating JSON is
 * recursive (V8's JSON.stringify and zod overflow the stack at a few thousand levels), and no job
 * needs more.
 */
export const MAX_PAYLOAD_DEPTH = 64;

/**
 * Why a JSON value cannot be a payload, or undefined when it can: nested deeper than
 * MAX_PAYLOAD_DEPTH, or a string or key holding U+0000 (PostgreSQL text and jsonb cannot store it).
 * Iterative, so any depth is safe to ask about; it stops at the first problem.
 */
export function payloadProblem(value: unknown, maxDepth = MAX_PAYLOAD_DEPTH): string | undefined {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const v = item.value;
    if (typeof v === 'string') {
      if (v.includes('\0')) return 'contains U+0000 (NUL) in a string';
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    const depth = item.depth + 1;
    if (depth > maxDepth) return `nested deeper than ${maxDepth} levels`;
    if (Array.isArray(v)) {
      for (const x of v as unknown[]) stack.push({ value: x, depth });
    } else {
      for (const [k, x] of Object.entries(v)) {
        if (k.includes('\0')) return 'contains U+0000 (NUL) in a key';
        stack.push({ value: x, depth });
      }
    }
  }
  return undefined;
}

/**
 * A value that came out of JSON.parse (so it is JSON by construction) and that Janus can carry and
 * store as a payload (see payloadProblem). The edge's request bodies use this: no recursion at all.
 */
export const ParsedPayload = z.unknown().superRefine(refinePayload);

/** The refinement of ParsedPayload, for schemas built from another zod entry point (e.g. for OpenAPI). */
export function refinePayload(value: unknown, ctx: z.RefinementCtx): void {
  const problem = payloadProblem(value);
  if (problem === undefined) return;
  const why = problem.includes('NUL') ? ', which PostgreSQL cannot store (encode binary data, e.g. as base64)' : '';
  ctx.addIssue({ code: 'custom', message: `${problem}${why}`, input: value });
}

/** A job's payload from anywhere: storable (checked first, so z.json() never recurses too deep), then JSON. */
export const JobPayload = ParsedPayload.pipe(z.json());
