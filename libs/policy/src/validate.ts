import { joinPath, PolicyDocument, zodFieldErrors, type FieldError } from '@janus/contracts';

export type Validation<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly errors: FieldError[] };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Cross-references read from the raw input, so that they are reported together with every
 * structural error (zod runs refinements only on structurally valid input).
 */
function crossReferenceErrors(input: unknown): FieldError[] {
  if (!isRecord(input) || !isRecord(input['jobTypes'])) return [];
  const deps = isRecord(input['dependencies']) ? input['dependencies'] : {};
  const out: FieldError[] = [];
  for (const [jobType, policy] of Object.entries(input['jobTypes'])) {
    if (!isRecord(policy) || !Array.isArray(policy['dependencies'])) continue;
    const seen = new Set<string>();
    policy['dependencies'].forEach((dep: unknown, i: number) => {
      if (!isRecord(dep) || typeof dep['name'] !== 'string') return;
      const name = dep['name'];
      const path = joinPath(['jobTypes', jobType, 'dependencies', i, 'name']);
      if (!Object.hasOwn(deps, name)) out.push({ path, message: `unknown dependency "${name}"` });
      if (seen.has(name)) out.push({ path, message: `dependency "${name}" listed twice` });
      seen.add(name);
    });
  }
  return out;
}

function dedupe(errors: FieldError[]): FieldError[] {
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
 */
export function validatePolicyDocument(
  input: unknown,
  extraCheck?: (doc: PolicyDocument) => FieldError[],
): Validation<PolicyDocument> {
  const parsed = PolicyDocument.safeParse(input);
  const errors = dedupe([...(parsed.success ? [] : zodFieldErrors(parsed.error.issues)), ...crossReferenceErrors(input)]);
  if (errors.length > 0 || !parsed.success) return { ok: false, errors };
  const extra = extraCheck?.(parsed.data) ?? [];
  if (extra.length > 0) return { ok: false, errors: extra };
  return { ok: true, value: parsed.data };
}
