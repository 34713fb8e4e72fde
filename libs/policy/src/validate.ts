import { AcceptedPolicy, joinPath, PolicyDocument, zodFieldErrors, type FieldError } from '@janus/contracts';

export type Validation<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly errors: FieldError[] };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A job type's dependency list checked against the declared dependencies: each unknown name, and
 * each name listed twice, at `path(i)`. Reads the raw input, so that it is reported together with
 * every structural error (zod runs refinements only on structurally valid input).
 */
export function dependencyListErrors(list: unknown, declared: Record<string, unknown>, path: (i: number) => string): FieldError[] {
  if (!Array.isArray(list)) return [];
  const out: FieldError[] = [];
  const seen = new Set<string>();
  list.forEach((dep: unknown, i: number) => {
    if (!isRecord(dep) || typeof dep['name'] !== 'string') return;
    const name = dep['name'];
    if (!Object.hasOwn(declared, name)) out.push({ path: path(i), message: `unknown dependency "${name}"` });
    if (seen.has(name)) out.push({ path: path(i), message: `dependency "${name}" listed twice` });
    seen.add(name);
  });
  return out;
}

/** Cross-references of a whole document: every job type's dependency list. */
function crossReferenceErrors(input: unknown): FieldError[] {
  if (!isRecord(input) || !isRecord(input['jobTypes'])) return [];
  const deps = isRecord(input['dependencies']) ? input['dependencies'] : {};
  return Object.entries(input['jobTypes']).flatMap(([jobType, policy]) =>
    isRecord(policy) ? dependencyListErrors(policy['dependencies'], deps, (i) => joinPath(['jobTypes', jobType, 'dependencies', i, 'name'])) : [],
  );
}

/** Each error once (the same problem can be found by zod and by a cross-reference check). */
export function dedupeErrors(errors: FieldError[]): FieldError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const k = `${e.path}\u0000${e.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * Validates a whole policy document and lists every problem at once: fields, names, unknown fields
 * and cross-references (a job type naming an unknown dependency). `extraCheck` runs on a
 * structurally valid document (e.g. the limiter's compiler) and may add its own errors.
 * `accepted`: checked as the admin API accepts a new document (AcceptedPolicy: POLICY_BOUNDS, a job
 * type's `dependencies` required); else as a stored one is read (PolicyDocument).
 */
export function validatePolicyDocument(
  input: unknown,
  extraCheck?: (doc: PolicyDocument) => FieldError[],
  opts: { accepted?: boolean } = {},
): Validation<PolicyDocument> {
  const parsed = (opts.accepted ? AcceptedPolicy.PolicyDocument : PolicyDocument).safeParse(input);
  const errors = dedupeErrors([...(parsed.success ? [] : zodFieldErrors(parsed.error.issues)), ...crossReferenceErrors(input)]);
  if (errors.length > 0 || !parsed.success) return { ok: false, errors };
  const extra = extraCheck?.(parsed.data) ?? [];
  if (extra.length > 0) return { ok: false, errors: extra };
  return { ok: true, value: parsed.data };
}
