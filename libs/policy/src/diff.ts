import type { PolicyDocument } from '@janus/contracts';

/** One resource-level change between two policy documents. `path` is `dependencies.<name>`, `tenants.<id>`, `jobTypes.<name>` or `global`. */
export interface PolicyChange {
  readonly op: 'add' | 'remove' | 'change';
  readonly path: string;
  readonly before?: unknown;
  readonly after?: unknown;
}

const SECTIONS = ['dependencies', 'tenants', 'jobTypes'] as const;

/** JSON with object keys sorted, so equal values compare equal whatever their key order (jsonb reorders keys). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

export function samePolicy(a: PolicyDocument, b: PolicyDocument): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** What changes from `before` to `after`, resource by resource, in a stable order. */
export function diffPolicies(before: PolicyDocument, after: PolicyDocument): PolicyChange[] {
  const changes: PolicyChange[] = [];
  for (const section of SECTIONS) {
    const a: Record<string, unknown> = before[section];
    const b: Record<string, unknown> = after[section];
    const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const name of names) {
      const path = `${section}.${name}`;
      const inA = Object.hasOwn(a, name);
      const inB = Object.hasOwn(b, name);
      if (inA && !inB) changes.push({ op: 'remove', path, before: a[name] });
      else if (!inA && inB) changes.push({ op: 'add', path, after: b[name] });
      else if (canonicalJson(a[name]) !== canonicalJson(b[name])) changes.push({ op: 'change', path, before: a[name], after: b[name] });
    }
  }
  if (canonicalJson(before.global) !== canonicalJson(after.global)) {
    changes.push({ op: 'change', path: 'global', before: before.global, after: after.global });
  }
  return changes;
}
