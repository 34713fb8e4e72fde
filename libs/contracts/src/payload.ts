import { z } from 'zod';

/**
 * The deepest a job payload may nest (arrays and objects; a scalar payload is depth 0, `[]` or
 * `{}` is depth 1). Deeper payloads are refused at the edge: serializing and validating JSON is
 * recursive (V8's JSON.stringify and zod overflow the stack at a few thousand levels), and no job
 * needs more.
 */
export const MAX_PAYLOAD_DEPTH = 64;

/**
 * A lone UTF-16 surrogate: a high one (U+D800–U+DBFF) not followed by a low one, or a low one
 * (U+DC00–U+DFFF) not preceded by a high one. JSON can carry one (the escape `\ud800`) and
 * JavaScript strings hold it, but it is no Unicode text: PostgreSQL refuses it in json and jsonb
 * ("invalid input syntax for type json"), and UTF-8 cannot encode it.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether `text` holds a lone UTF-16 surrogate (see LONE_SURROGATE). */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/** Whether PostgreSQL text and json can hold `text`: no U+0000 (NUL) and no lone UTF-16 surrogate. */
export function isStorableText(text: string): boolean {
  return !text.includes('\0') && !LONE_SURROGATE.test(text);
}

/**
 * Text that is for people (a worker's error), made storable: each U+0000 and each lone surrogate
 * becomes U+FFFD (the replacement character), as a UTF-8 decoder does with bytes it cannot read.
 */
export function storableHumanText(text: string): string {
  if (isStorableText(text)) return text;
  return text.replaceAll('\0', '\uFFFD').replace(new RegExp(LONE_SURROGATE.source, 'g'), '\uFFFD');
}

/** What is wrong with one string of a payload (or any request field), or undefined. */
function stringProblem(text: string, where: 'string' | 'key'): string | undefined {
  if (text.includes('\0')) return `contains U+0000 (NUL) in a ${where}`;
  if (LONE_SURROGATE.test(text)) return `contains a lone UTF-16 surrogate (an unpaired \\ud800–\\udfff escape) in a ${where}`;
  return undefined;
}

/**
 * Why a JSON value cannot be a payload, or undefined when it can: nested deeper than
 * MAX_PAYLOAD_DEPTH, a string or key holding U+0000 (NUL) or a lone UTF-16 surrogate (PostgreSQL
 * text and jsonb cannot store either), or a number JSON.parse read as ±Infinity (1e309).
 * Iterative, so any depth is safe to ask about; it stops at the first problem.
 */
export function payloadProblem(value: unknown, maxDepth = MAX_PAYLOAD_DEPTH): string | undefined {
  // Two parallel stacks (values and their depth) and `for…in`: on every request's payload, so no
  // allocation per node.
  const values: unknown[] = [value];
  const depths: number[] = [0];
  for (let v = values.pop(), d = depths.pop(); d !== undefined; v = values.pop(), d = depths.pop()) {
    if (typeof v === 'string') {
      const problem = stringProblem(v, 'string');
      if (problem !== undefined) return problem;
      continue;
    }
    // JSON.parse reads a number beyond the double range (1e309) as Infinity, which JSON cannot
    // carry: stored, it would become null, and the worker would get other data than was sent.
    if (typeof v === 'number' && !Number.isFinite(v)) return 'contains a number beyond the range of a double (read as Infinity)';
    if (v === null || typeof v !== 'object') continue;
    const depth = d + 1;
    if (depth > maxDepth) return `nested deeper than ${maxDepth} levels`;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        values.push(v[i]);
        depths.push(depth);
      }
    } else {
      const o = v as Record<string, unknown>;
      for (const k in o) {
        if (!Object.hasOwn(o, k)) continue;
        const problem = stringProblem(k, 'key');
        if (problem !== undefined) return problem;
        values.push(o[k]);
        depths.push(depth);
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
  const why = problem.includes('NUL') || problem.includes('surrogate') ? ', which PostgreSQL cannot store (encode binary data, e.g. as base64)' : '';
  ctx.addIssue({ code: 'custom', message: `${problem}${why}`, input: value });
}

/** A job's payload from anywhere: storable (checked first, so z.json() never recurses too deep), then JSON. */
export const JobPayload = ParsedPayload.pipe(z.json());
