import {
  AcceptedPolicy,
  joinPath,
  Name,
  zodFieldErrors,
  type FieldError,
  type PolicyDocument,
} from '@janus/contracts';
import { dedupeErrors, dependencyListErrors, validatePolicyDocument } from './validate.js';

/** The named sections of a policy document (global is a single object). */
export type PolicySection = 'dependencies' | 'tenants' | 'jobTypes';

/**
 * What a PUT's body must be: the bounded schemas (POLICY_BOUNDS, a job type's `dependencies`
 * required). The rest of the document is checked as it is read (validatePolicyDocument's default),
 * so that a resource stored before the bounds does not block changes to the others.
 */
const SCHEMAS = { dependencies: AcceptedPolicy.DependencyPolicy, tenants: AcceptedPolicy.TenantPolicy, jobTypes: AcceptedPolicy.JobTypePolicy } as const;

export type EditResult =
  | { readonly ok: true; readonly document: PolicyDocument; readonly stored: unknown }
  | { readonly ok: false; readonly status: 404; readonly detail: string }
  | { readonly ok: false; readonly status: 422; readonly errors: FieldError[] };

export type ExtraCheck = (doc: PolicyDocument) => FieldError[];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Errors of the whole new document, with paths inside the edited resource made relative to the request body. */
function relativise(errors: FieldError[], prefix: string): FieldError[] {
  return errors.map((e) =>
    e.path === prefix ? { path: '(body)', message: e.message } : e.path.startsWith(`${prefix}.`) ? { path: e.path.slice(prefix.length + 1), message: e.message } : e,
  );
}

/**
 * `PUT /v1/<section>/<name>`: validates the body (every problem at once, paths relative to the
 * body), including a job type's dependencies against the current document, and returns the new
 * document with the stored (defaulted) object.
 */
export function putResource(doc: PolicyDocument, section: PolicySection, name: string, body: unknown, extraCheck?: ExtraCheck): EditResult {
  const errors: FieldError[] = [];
  const nameCheck = Name.safeParse(name);
  // the path parameter's own name: tenants are `{id}`, the other sections `{name}` (CONTRACT §5)
  if (!nameCheck.success) errors.push({ path: section === 'tenants' ? 'id' : 'name', message: nameCheck.error.issues[0]?.message ?? 'invalid name' });
  const parsed = SCHEMAS[section].safeParse(body);
  if (!parsed.success) errors.push(...zodFieldErrors(parsed.error.issues));
  if (section === 'jobTypes' && isRecord(body)) {
    errors.push(...dependencyListErrors(body['dependencies'], doc.dependencies, (i) => joinPath(['dependencies', i, 'name'])));
  }
  if (errors.length > 0 || !parsed.success) return { ok: false, status: 422, errors: dedupeErrors(errors) };
  const next = { ...doc, [section]: { ...doc[section], [name]: parsed.data } } as PolicyDocument;
  const whole = validatePolicyDocument(next, extraCheck);
  if (!whole.ok) return { ok: false, status: 422, errors: relativise(whole.errors, `${section}.${name}`) };
  return { ok: true, document: whole.value, stored: whole.value[section][name] };
}

/** `DELETE /v1/<section>/<name>`: 404 when absent; a dependency still used by a job type is 422 naming each use. */
export function deleteResource(doc: PolicyDocument, section: PolicySection, name: string): EditResult {
  const current: Record<string, unknown> = doc[section];
  if (!Object.hasOwn(current, name)) return { ok: false, status: 404, detail: `${singular(section)} "${name}" does not exist` };
  if (section === 'dependencies') {
    const errors: FieldError[] = [];
    for (const [jobType, jt] of Object.entries(doc.jobTypes)) {
      jt.dependencies.forEach((d, i) => {
        if (d.name === name) {
          errors.push({
            path: joinPath(['jobTypes', jobType, 'dependencies', i, 'name']),
            message: `dependency "${name}" is still used by job type "${jobType}"`,
          });
        }
      });
    }
    if (errors.length > 0) return { ok: false, status: 422, errors };
  }
  const rest = Object.fromEntries(Object.entries(current).filter(([k]) => k !== name));
  const next = { ...doc, [section]: rest } as PolicyDocument;
  return { ok: true, document: next, stored: undefined };
}

/** `PUT /v1/global`. */
export function putGlobal(doc: PolicyDocument, body: unknown, extraCheck?: ExtraCheck): EditResult {
  const parsed = AcceptedPolicy.GlobalPolicy.safeParse(body);
  if (!parsed.success) return { ok: false, status: 422, errors: zodFieldErrors(parsed.error.issues) };
  const whole = validatePolicyDocument({ ...doc, global: parsed.data }, extraCheck);
  if (!whole.ok) return { ok: false, status: 422, errors: relativise(whole.errors, 'global') };
  return { ok: true, document: whole.value, stored: whole.value.global };
}

/** `PUT /v1/policy`: the whole document, every part of it bounded (AcceptedPolicy). */
export function replacePolicy(body: unknown, extraCheck?: ExtraCheck): EditResult {
  const whole = validatePolicyDocument(body, extraCheck, { accepted: true });
  if (!whole.ok) return { ok: false, status: 422, errors: whole.errors };
  return { ok: true, document: whole.value, stored: whole.value };
}

export function singular(section: PolicySection): string {
  return section === 'dependencies' ? 'dependency' : section === 'tenants' ? 'tenant' : 'job type';
}
