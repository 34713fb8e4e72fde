import { describe, expect, it } from 'vitest';
import { PolicyDocument } from '@janus/contracts';
import { diffPolicies, samePolicy } from './diff.js';
import { deleteResource, putGlobal, putResource, replacePolicy } from './edit.js';
import { validatePolicyDocument } from './validate.js';

const base = PolicyDocument.parse({
  dependencies: { stripe: { rate: { limit: 10, periodMs: 1000 } }, db: { concurrency: 5 } },
  tenants: { acme: { weight: 2 } },
  jobTypes: { charge: { dependencies: [{ name: 'stripe' }, { name: 'db', cost: 2 }] } },
});

describe('validatePolicyDocument lists every problem at once', () => {
  it('reports fields, names, unknown fields and cross-references together', () => {
    const result = validatePolicyDocument({
      dependencies: { 'Bad Name': {}, ok: { rate: { limit: 0, periodMs: 'x' }, foo: 1 } },
      jobTypes: { j: { dependencies: [{ name: 'nope' }] } },
      extra: 1,
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      { path: 'dependencies.Bad Name', message: 'invalid name: must match ^[a-z0-9][a-z0-9_-]{0,63}$' },
      { path: 'dependencies.ok.rate.limit', message: 'Too small: expected number to be >=1' },
      { path: 'dependencies.ok.rate.periodMs', message: 'Invalid input: expected number, received string' },
      { path: 'dependencies.ok.foo', message: 'unknown field' },
      { path: 'extra', message: 'unknown field' },
      { path: 'jobTypes.j.dependencies.0.name', message: 'unknown dependency "nope"' },
    ]);
  });

  it('reports a cross-reference alone once (not twice from zod and the raw pass)', () => {
    const result = validatePolicyDocument({ jobTypes: { j: { dependencies: [{ name: 'nope' }, { name: 'nope' }] } } });
    expect(result).toEqual({
      ok: false,
      errors: [
        { path: 'jobTypes.j.dependencies.0.name', message: 'unknown dependency "nope"' },
        { path: 'jobTypes.j.dependencies.1.name', message: 'unknown dependency "nope"' },
        { path: 'jobTypes.j.dependencies.1.name', message: 'dependency "nope" listed twice' },
      ],
    });
  });

  it('names the root for a non-object and runs the extra check only on valid documents', () => {
    expect(validatePolicyDocument([])).toEqual({ ok: false, errors: [{ path: '(body)', message: 'Invalid input: expected object, received array' }] });
    const extra = validatePolicyDocument({}, () => [{ path: 'global', message: 'refused' }]);
    expect(extra).toEqual({ ok: false, errors: [{ path: 'global', message: 'refused' }] });
  });
});

describe('resource edits', () => {
  it('puts a dependency with its defaults and reports body-relative paths', () => {
    const ok = putResource(base, 'dependencies', 'mail', { concurrency: 3 });
    expect(ok).toMatchObject({ ok: true, stored: { concurrency: 3, failMode: 'closed' } });
    const bad = putResource(base, 'dependencies', 'Mail!', { concurrency: 0, rate: { limit: 1 }, x: true });
    expect(bad).toEqual({
      ok: false,
      status: 422,
      errors: [
        { path: 'name', message: 'must match ^[a-z0-9][a-z0-9_-]{0,63}$' },
        { path: 'rate.periodMs', message: 'Invalid input: expected number, received undefined' },
        { path: 'concurrency', message: 'Too small: expected number to be >=1' },
        { path: 'x', message: 'unknown field' },
      ],
    });
  });

  it('refuses a job type naming an unknown dependency, with every other problem', () => {
    const bad = putResource(base, 'jobTypes', 'send', { dependencies: [{ name: 'stripe' }, { name: 'smtp' }], timeoutMs: -1 });
    expect(bad).toEqual({
      ok: false,
      status: 422,
      errors: [
        { path: 'timeoutMs', message: 'Too small: expected number to be >=1' },
        { path: 'dependencies.1.name', message: 'unknown dependency "smtp"' },
      ],
    });
  });

  it('refuses deleting a dependency still in use, naming each use; 404 for an unknown one', () => {
    expect(deleteResource(base, 'dependencies', 'db')).toEqual({
      ok: false,
      status: 422,
      errors: [{ path: 'jobTypes.charge.dependencies.1.name', message: 'dependency "db" is still used by job type "charge"' }],
    });
    expect(deleteResource(base, 'tenants', 'nobody')).toEqual({ ok: false, status: 404, detail: 'tenant "nobody" does not exist' });
    const removed = deleteResource(base, 'jobTypes', 'charge');
    expect(removed.ok && Object.keys(removed.document.jobTypes)).toEqual([]);
  });

  it('puts global and replaces the whole policy', () => {
    expect(putGlobal(base, { concurrency: 100 })).toMatchObject({ ok: true, stored: { concurrency: 100, shedding: { low: 0.8, normal: 1 } } });
    expect(putGlobal(base, { shedding: { low: 2 } })).toEqual({
      ok: false,
      status: 422,
      errors: [{ path: 'shedding.low', message: 'Too big: expected number to be <=1' }],
    });
    expect(replacePolicy({ tenants: { a: {} } })).toMatchObject({ ok: true });
  });
});

describe('diffPolicies', () => {
  it('lists resource-level adds, removes and changes in a stable order, ignoring key order', () => {
    const next = PolicyDocument.parse({
      dependencies: { stripe: { rate: { periodMs: 1000, limit: 20 } }, db: { concurrency: 5 }, mail: {} },
      tenants: {},
      jobTypes: { charge: { dependencies: [{ name: 'stripe' }, { name: 'db', cost: 2 }] } },
      global: { concurrency: 9 },
    });
    expect(diffPolicies(base, next).map((c) => [c.op, c.path])).toEqual([
      ['add', 'dependencies.mail'],
      ['change', 'dependencies.stripe'],
      ['remove', 'tenants.acme'],
      ['change', 'global'],
    ]);
    const reordered = PolicyDocument.parse(JSON.parse(JSON.stringify({ jobTypes: base.jobTypes, tenants: base.tenants, dependencies: base.dependencies })));
    expect(samePolicy(base, reordered)).toBe(true);
  });
});
