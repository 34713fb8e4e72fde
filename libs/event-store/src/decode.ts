import { AppliedBatch, AppliedOutcome, DeadLetter, JobMessage, LeaseExtended, LedgerMessage, MAX_PAYLOAD_DEPTH, type CreditLedgerEntry, type LedgerEntry, NAME_PATTERN, OutcomeEvent, payloadProblem, ReportedOutcome, storableHumanText } from '@janus/contracts';
import { messageIds, type NatsNames } from '@janus/messaging';
import { z } from 'zod';

/**
 * The streams the persister reads: CONTRACT §4's four, the outcomes the scheduler applied, and the
 * lease extensions it granted.
 */
export type StreamKind = 'jobs' | 'outcomes' | 'dead' | 'ledger' | 'applied' | 'extensions';
export const STREAM_KINDS: readonly StreamKind[] = ['jobs', 'outcomes', 'dead', 'ledger', 'applied', 'extensions'];

/** What the persister needs from one JetStream message. */
export interface RawMessage {
  readonly subject: string;
  /** Stream sequence: identifies the message for `rejected_messages`. */
  readonly seq: number;
  readonly data: Uint8Array;
  /** When JetStream stored the message (ms since the epoch). */
  readonly timestampMs: number;
}

export type PersistEvent =
  | { readonly kind: 'job'; readonly seq: number; readonly body: JobMessage }
  | { readonly kind: 'outcome'; readonly seq: number; readonly reportedAt: Date; readonly body: OutcomeEvent }
  | { readonly kind: 'dead'; readonly seq: number; readonly body: DeadLetter }
  | { readonly kind: 'ledger'; readonly seq: number; readonly body: LedgerEntry }
  | { readonly kind: 'credit'; readonly seq: number; readonly body: CreditLedgerEntry }
  /** One message: an AppliedOutcome, or an AppliedBatch of them (in order). */
  | { readonly kind: 'applied'; readonly seq: number; readonly bodies: readonly AppliedOutcome[] }
  | { readonly kind: 'extension'; readonly seq: number; readonly body: LeaseExtended }
  | {
      readonly kind: 'rejected';
      readonly stream: string;
      readonly seq: number;
      readonly subject: string;
      readonly reason: string;
      readonly raw: string;
    };

export type RejectedEvent = Extract<PersistEvent, { kind: 'rejected' }>;

/** PostgreSQL `integer` columns (attempt, cost). */
const PG_INT_MAX = 2_147_483_647;
/** A btree index entry must fit in ~2.7 kB; ids are indexed, so bound them well below that. */
const MAX_ID_LENGTH = 200;
/** Raw bodies kept in `rejected_messages` are truncated to this many characters. */
const MAX_RAW_KEPT = 16_384;

const decoder = new TextDecoder('utf-8');

/** An escape of a surrogate (`\ud800`–`\udfff`, either case): a parsed string may hold a lone one. */
const MAY_HOLD_SURROGATE = /\\u[dD][89a-fA-F]/;

// The contract's schemas, except that `payload` is not re-validated as JSON: it came out of
// JSON.parse, so it is JSON by construction, and z.json() is three quarters of the parse cost.
const JobMessageBody = JobMessage.extend({ payload: z.unknown() });
const DeadLetterBody = DeadLetter.extend({ payload: z.unknown() });

/**
 * Text PostgreSQL will accept: no NUL characters (text and jsonb both refuse them), and no lone
 * UTF-16 surrogate (json refuses it; a raw body cut at MAX_RAW_KEPT may end in half a pair).
 */
function storableText(text: string): string {
  return storableHumanText(text.replaceAll('\0', '\\u0000'));
}

/**
 * Why PostgreSQL could never store this decoded body (a U+0000 or a lone UTF-16 surrogate anywhere,
 * or a payload nested deeper than the ingress admits), or undefined. Either can only come from an
 * escape (`\u0000`, `\ud800`…: a raw NUL byte is not JSON, and the UTF-8 decoder turns bytes that
 * are no text into U+FFFD), so bodies without such text are walked only for their payload's depth.
 */
function unstorable(body: object, mayHoldNul: boolean, payload: unknown): string | undefined {
  if (mayHoldNul) {
    const problem = payloadProblem(body, MAX_PAYLOAD_DEPTH + 1);
    if (problem !== undefined) return `body ${problem}`;
  }
  const problem = payload === undefined ? undefined : payloadProblem(payload);
  return problem === undefined ? undefined : `payload ${problem}`;
}

/**
 * A worker's error text is for people: a NUL or a lone UTF-16 surrogate in it becomes U+FFFD
 * instead of losing the outcome (PostgreSQL would refuse the row, and the job's status would never
 * follow its outcome).
 */
function storableError<T extends { error?: string | undefined }>(body: T): T {
  if (body.error === undefined) return body;
  const error = storableHumanText(body.error);
  return error === body.error ? body : { ...body, error };
}

function zodReason(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/**
 * The form Janus writes timestamps in (`toISOString`), fields in range: checked without parsing
 * (Date.parse and toISOString are a visible share of the persister's time). A day past its
 * month's end passes here and is refused by PostgreSQL, which rejects that one message.
 */
const CANONICAL_ISO = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$/;

export function isCanonicalIso(value: string): boolean {
  return CANONICAL_ISO.test(value);
}

function isDate(value: string): boolean {
  return CANONICAL_ISO.test(value) || Number.isFinite(Date.parse(value));
}

/**
 * Turns one message of one stream into what the store writes, or into a rejection with the reason
 * (not JSON, fails the contract's zod schema, subject does not match the body, or a value
 * PostgreSQL could never store). Never throws.
 */
export function decodeMessage(names: NatsNames, kind: StreamKind, stream: string, msg: RawMessage): PersistEvent {
  const raw = decoder.decode(msg.data);
  // A plain function call per rejection, not a closure per message (tsx's keepNames wraps every
  // named closure in a defineProperty call).
  const reject = rejectWith;

  const prefix = `${names.namespace}.${kind}.`;
  const token = msg.subject.startsWith(prefix) ? msg.subject.slice(prefix.length) : undefined;
  if (token === undefined || !NAME_PATTERN.test(token)) return reject(stream, msg, raw, `subject ${msg.subject} does not match ${prefix}<name>`);

  // PostgreSQL text and jsonb cannot hold NUL, nor json a lone surrogate: only an escape can put
  // one in a parsed string (a raw NUL byte is not JSON; the decoder made undecodable bytes U+FFFD).
  // The text `\\u0000` (an escaped backslash) is neither: checked below, on the parsed values.
  const mayHoldNul = raw.includes('\\u0000') || MAY_HOLD_SURROGATE.test(raw);

  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return reject(stream, msg, raw, 'body is not JSON');
  }

  switch (kind) {
    case 'jobs': {
      const parsed = JobMessageBody.safeParse(json);
      if (!parsed.success) return reject(stream, msg, raw, `not a JobMessage: ${zodReason(parsed.error)}`);
      const b = parsed.data as JobMessage;
      if (b.type !== token) return reject(stream, msg, raw, `subject job type ${token} does not match body type ${b.type}`);
      if (b.jobId.length > MAX_ID_LENGTH) return reject(stream, msg, raw, `jobId longer than ${MAX_ID_LENGTH} characters`);
      if (b.attempt > PG_INT_MAX) return reject(stream, msg, raw, 'attempt out of range');
      if (b.cost !== undefined && b.cost > PG_INT_MAX) return reject(stream, msg, raw, 'cost out of range');
      if (!isDate(b.admittedAt)) return reject(stream, msg, raw, 'admittedAt is not a timestamp');
      if (!isDate(b.lease.expiresAt)) return reject(stream, msg, raw, 'lease.expiresAt is not a timestamp');
      const why = unstorable(b, mayHoldNul, b.payload);
      if (why !== undefined) return reject(stream, msg, raw, `${why}, which PostgreSQL cannot store`);
      return { kind: 'job', seq: msg.seq, body: b };
    }
    case 'outcomes': {
      const parsed = ReportedOutcome.safeParse(json);
      if (!parsed.success) return reject(stream, msg, raw, `not an OutcomeEvent: ${zodReason(parsed.error)}`);
      const b = storableError(parsed.data);
      if (b.jobId.length > MAX_ID_LENGTH) return reject(stream, msg, raw, `jobId longer than ${MAX_ID_LENGTH} characters`);
      if (b.attempt > PG_INT_MAX) return reject(stream, msg, raw, 'attempt out of range');
      if (b.actualCost !== undefined && b.actualCost > PG_INT_MAX) return reject(stream, msg, raw, 'actualCost out of range');
      const why = unstorable(b, mayHoldNul, undefined);
      if (why !== undefined) return reject(stream, msg, raw, `${why}, which PostgreSQL cannot store`);
      return { kind: 'outcome', seq: msg.seq, reportedAt: new Date(msg.timestampMs), body: b };
    }
    case 'dead': {
      const parsed = DeadLetterBody.safeParse(json);
      if (!parsed.success) return reject(stream, msg, raw, `not a DeadLetter: ${zodReason(parsed.error)}`);
      const b = storableError(parsed.data as DeadLetter);
      if (b.type !== token) return reject(stream, msg, raw, `subject job type ${token} does not match body type ${b.type}`);
      if (b.jobId.length > MAX_ID_LENGTH) return reject(stream, msg, raw, `jobId longer than ${MAX_ID_LENGTH} characters`);
      if (b.attempts > PG_INT_MAX) return reject(stream, msg, raw, 'attempts out of range');
      if (!isDate(b.deadAt)) return reject(stream, msg, raw, 'deadAt is not a timestamp');
      const why = unstorable(b, mayHoldNul, b.payload);
      if (why !== undefined) return reject(stream, msg, raw, `${why}, which PostgreSQL cannot store`);
      return { kind: 'dead', seq: msg.seq, body: b };
    }
    case 'ledger': {
      const parsed = LedgerMessage.safeParse(json);
      if (!parsed.success) return reject(stream, msg, raw, `not a LedgerEntry: ${zodReason(parsed.error)}`);
      const b = parsed.data;
      if (b.tenant !== token) return reject(stream, msg, raw, `subject tenant ${token} does not match body tenant ${b.tenant}`);
      if (b.account === 'credits') {
        if (b.entryId.length > MAX_ID_LENGTH * 2) return reject(stream, msg, raw, `entryId longer than ${MAX_ID_LENGTH * 2} characters`);
        if (b.jobId !== undefined && b.jobId.length > MAX_ID_LENGTH) return reject(stream, msg, raw, `jobId longer than ${MAX_ID_LENGTH} characters`);
        if (b.attempt !== undefined && b.attempt > PG_INT_MAX) return reject(stream, msg, raw, 'attempt out of range');
        if (!Number.isSafeInteger(b.amount)) return reject(stream, msg, raw, 'amount out of range');
        if (!isDate(b.at)) return reject(stream, msg, raw, 'at is not a timestamp');
        const why = unstorable(b, mayHoldNul, undefined);
        if (why !== undefined) return reject(stream, msg, raw, `${why}, which PostgreSQL cannot store`);
        return { kind: 'credit', seq: msg.seq, body: b };
      }
      if (b.jobId.length > MAX_ID_LENGTH) return reject(stream, msg, raw, `jobId longer than ${MAX_ID_LENGTH} characters`);
      if (b.attempt > PG_INT_MAX) return reject(stream, msg, raw, 'attempt out of range');
      if (!Number.isSafeInteger(b.amount)) return reject(stream, msg, raw, 'amount out of range');
      if (!isDate(b.at)) return reject(stream, msg, raw, 'at is not a timestamp');
      const why = unstorable(b, mayHoldNul, undefined);
      if (why !== undefined) return reject(stream, msg, raw, `${why}, which PostgreSQL cannot store`);
      return { kind: 'ledger', seq: msg.seq, body: b };
    }
    case 'applied': {
      const batch = typeof json === 'object' && json !== null && 'applied' in json;
      const parsed = batch ? AppliedBatch.safeParse(json) : AppliedOutcome.safeParse(json);
      if (!parsed.success) return reject(stream, msg, raw, `not ${batch ? 'an AppliedBatch' : 'an AppliedOutcome'}: ${zodReason(parsed.error)}`);
      const bodies: AppliedOutcome[] = [];
      for (const applied of 'applied' in parsed.data ? parsed.data.applied : [parsed.data]) {
        // The applied error is the worker's: a NUL in it becomes U+FFFD, as for the raw report.
        const b = storableError(applied);
        if (b.type !== token) return reject(stream, msg, raw, `subject job type ${token} does not match body type ${b.type}`);
        if (b.jobId.length > MAX_ID_LENGTH) return reject(stream, msg, raw, `jobId longer than ${MAX_ID_LENGTH} characters`);
        if (b.attempt > PG_INT_MAX) return reject(stream, msg, raw, 'attempt out of range');
        if (b.actualCost !== undefined && b.actualCost > PG_INT_MAX) return reject(stream, msg, raw, 'actualCost out of range');
        if (!isDate(b.appliedAt)) return reject(stream, msg, raw, 'appliedAt is not a timestamp');
        const why = unstorable(b, mayHoldNul, undefined);
        if (why !== undefined) return reject(stream, msg, raw, `${why}, which PostgreSQL cannot store`);
        bodies.push(b);
      }
      return { kind: 'applied', seq: msg.seq, bodies };
    }
    case 'extensions': {
      const parsed = LeaseExtended.safeParse(json);
      if (!parsed.success) return reject(stream, msg, raw, `not a LeaseExtended: ${zodReason(parsed.error)}`);
      const b = parsed.data;
      if (b.type !== token) return reject(stream, msg, raw, `subject job type ${token} does not match body type ${b.type}`);
      if (b.jobId.length > MAX_ID_LENGTH) return reject(stream, msg, raw, `jobId longer than ${MAX_ID_LENGTH} characters`);
      if (b.attempt > PG_INT_MAX) return reject(stream, msg, raw, 'attempt out of range');
      const why = unstorable(b, mayHoldNul, undefined);
      if (why !== undefined) return reject(stream, msg, raw, `${why}, which PostgreSQL cannot store`);
      return { kind: 'extension', seq: msg.seq, body: b };
    }
  }
}

function rejectWith(stream: string, msg: RawMessage, raw: string, reason: string): RejectedEvent {
  return { kind: 'rejected', stream, seq: msg.seq, subject: msg.subject, reason: storableText(reason), raw: storableText(raw.length > MAX_RAW_KEPT ? raw.slice(0, MAX_RAW_KEPT) : raw) };
}

/** A message the database refused even though it passed validation (found by splitting the batch). */
export function rejectionOf(stream: string, msg: RawMessage, reason: string): RejectedEvent {
  const raw = decoder.decode(msg.data);
  return {
    kind: 'rejected',
    stream,
    seq: msg.seq,
    subject: msg.subject,
    reason: storableText(reason),
    raw: storableText(raw.length > MAX_RAW_KEPT ? raw.slice(0, MAX_RAW_KEPT) : raw),
  };
}

/** The ledger's natural key: its message id (CONTRACT §4), `<jobId>.<attempt>.<kind>`. */
export function ledgerEntryId(entry: Pick<LedgerEntry, 'jobId' | 'attempt' | 'kind'>): string {
  return messageIds.ledger(entry.jobId, entry.attempt, entry.kind);
}
