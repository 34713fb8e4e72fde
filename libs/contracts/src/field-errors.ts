import type { z } from 'zod';

/** One problem with one field (an entry of a problem's `errors`): `path` is dotted (`jobs.3.type`), `(body)` for the root. */
export interface FieldError {
  readonly path: string;
  readonly message: string;
}

type Path = readonly PropertyKey[];

export function joinPath(path: Path): string {
  return path.length === 0 ? '(body)' : path.map(String).join('.');
}

/**
 * Zod issues as field errors, every one of them: an unknown field is named by its own path, a bad
 * record key (a name) by the key's path. `prefix` roots the paths (e.g. `['Idempotency-Key']`).
 */
export function zodFieldErrors(issues: readonly z.core.$ZodIssue[], prefix: Path = []): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: joinPath([...path, key]), message: 'unknown field' });
    } else if (issue.code === 'invalid_key') {
      const inner = issue.issues[0]?.message ?? issue.message;
      out.push({ path: joinPath(path), message: `invalid name: ${inner}` });
    } else {
      out.push({ path: joinPath(path), message: issue.message });
    }
  }
  return out;
}
