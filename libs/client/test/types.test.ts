import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import type {
  AdmittedResponse,
  BatchAdmittedResponse,
  BatchJobRequest,
  BatchRejectedResponse,
  JobListResponse,
  JobRequest,
  JobStatus as ContractJobStatus,
  JobView as ContractJobView,
  Priority as ContractPriority,
  ProblemDetails,
  QueuedResponse,
  RejectReason as ContractRejectReason,
  RejectedResponse,
  ReplayResponse,
  UsageResponse,
} from '@janus/contracts';
import type { ExceedsCapacity } from '@janus/limiter';
import type {
  AdmittedBody,
  BatchAdmittedBody,
  BatchEntry,
  BatchRejectedBody,
  CapacityLimit,
  FieldError,
  JobAttempt,
  JobInput,
  JobPage,
  JobStatus,
  JobView,
  JsonValue,
  Priority,
  Problem,
  QueuedBody,
  RejectedBody,
  RejectReason,
  ReplayBody,
  SubmitMode,
  Usage,
} from '../src/index.js';

// The client declares its own wire types (it must not load zod or @janus/* at runtime). These
// assertions tie each one to the contract's zod schema: the file fails to typecheck
// (`nx typecheck client`) as soon as either side changes. The runtime `it`s only make vitest list it.

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Out<S extends z.ZodType> = z.output<S>;

/**
 * Reasons a producer can be told. The contract's enum also holds `retry_budget`, internal to
 * retries (never answered to a producer).
 */
type ProducerReasons = Exclude<ContractRejectReason, 'retry_budget'>;

describe('the client types equal the contract schemas', () => {
  it('requests', () => {
    // The payload's input type in the schema is `unknown` (it is checked after JSON.parse); its
    // output, what Janus accepts, is JSON.
    expectTypeOf<Omit<JobInput, 'payload'>>().toEqualTypeOf<Omit<z.input<typeof BatchJobRequest>, 'payload'>>();
    expectTypeOf<JobInput['payload']>().toEqualTypeOf<Out<typeof BatchJobRequest>['payload']>();
    expectTypeOf<Omit<JobInput & { mode?: SubmitMode }, 'payload'>>().toEqualTypeOf<Omit<z.input<typeof JobRequest>, 'payload'>>();
    expectTypeOf<SubmitMode>().toEqualTypeOf<Out<typeof JobRequest>['mode']>();
    expectTypeOf<Priority>().toEqualTypeOf<ContractPriority>();
    expect(true).toBe(true);
  });

  it('submission answers', () => {
    expectTypeOf<AdmittedBody>().toEqualTypeOf<Out<typeof AdmittedResponse>>();
    expectTypeOf<QueuedBody>().toEqualTypeOf<Out<typeof QueuedResponse>>();
    expectTypeOf<RejectReason>().toEqualTypeOf<ProducerReasons>();
    expectTypeOf<Omit<RejectedBody, 'reason'>>().toEqualTypeOf<Omit<Out<typeof RejectedResponse>, 'reason'>>();
    expect(true).toBe(true);
  });

  it('batch answers', () => {
    // Per-job `duplicate` (and the first answer's `admittedAt`) are documented in docs/api.md but
    // missing from the contract's schema: everything else must match.
    expectTypeOf<Omit<BatchEntry, 'duplicate' | 'admittedAt'>>().toEqualTypeOf<Out<typeof BatchAdmittedResponse>['jobs'][number]>();
    expectTypeOf<Omit<BatchAdmittedBody, 'jobs'>>().toEqualTypeOf<Omit<Out<typeof BatchAdmittedResponse>, 'jobs'>>();
    expectTypeOf<Omit<BatchRejectedBody, 'reason'>>().toEqualTypeOf<Omit<Out<typeof BatchRejectedResponse>, 'reason'>>();
    expect(true).toBe(true);
  });

  it('job views, usage and problems', () => {
    // The view's `payload` is typed `unknown` in the contract only because zod's recursive JSON
    // type defeats the OpenAPI generator; it is JSON, and the client says so.
    expectTypeOf<Omit<JobView, 'payload'>>().toEqualTypeOf<Omit<ContractJobView, 'payload'>>();
    expectTypeOf<JobView['payload']>().toEqualTypeOf<JsonValue | undefined>();
    expectTypeOf<'payload'>().toExtend<keyof ContractJobView>();
    expectTypeOf<Omit<JobPage, 'jobs'>>().toEqualTypeOf<Omit<Out<typeof JobListResponse>, 'jobs'>>();
    expectTypeOf<JobPage['jobs'][number]>().toEqualTypeOf<JobView>();
    expectTypeOf<ReplayBody>().toEqualTypeOf<Out<typeof ReplayResponse>>();
    expectTypeOf<JobStatus>().toEqualTypeOf<ContractJobStatus>();
    expectTypeOf<JobAttempt>().toEqualTypeOf<ContractJobView['attempts'][number]>();
    expectTypeOf<Usage>().toEqualTypeOf<Out<typeof UsageResponse>>();
    expectTypeOf<Problem>().toEqualTypeOf<ProblemDetails>();
    expectTypeOf<FieldError>().toEqualTypeOf<NonNullable<ProblemDetails['errors']>[number]>();
    // The extension field of a 422 exceeds-capacity problem, as the limiter describes it.
    expectTypeOf<CapacityLimit>().toEqualTypeOf<Mutable<ExceedsCapacity['limit']>>();
    expect(true).toBe(true);
  });
});

describe('the package stands alone', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

  it('has no runtime dependencies', async () => {
    const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    expect(pkg.dependencies ?? {}).toEqual({});
  });

  it('its sources import nothing but each other (no @janus/*, no node:*, no zod)', async () => {
    const files = (await readdir(path.join(root, 'src'))).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const text = await readFile(path.join(root, 'src', file), 'utf8');
      const specifiers = [...text.matchAll(/\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]);
      for (const s of specifiers) expect(s, `${file} imports ${s}`).toMatch(/^\.\//);
    }
  });
});
