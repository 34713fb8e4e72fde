import { JobMessage } from '@janus/contracts';
import type { JetStreamManager, SeqMsgRequest } from '@nats-io/jetstream';

const RFC3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/;

/**
 * A JetStream timestamp as the server writes it (RFC 3339 with up to nanoseconds, e.g.
 * `2025-01-02T03:04:05.123456789Z`) in whole ms, rounded down — the same number as
 * `Math.floor(msg.info.timestampNanos / 1e6)` for a delivered message. Undefined if unreadable.
 */
export function jetStreamTimeMs(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(seconds)) return undefined;
  return seconds + Number((m[2] ?? '').padEnd(3, '0').slice(0, 3));
}

/**
 * When the stream stored message `seq` — or, with `subject`, the first message at or after `seq`
 * matching it (`next_by_subj`, nats-server ≥ 2.9) — as { seq, at (ms) }; undefined when there is
 * none. The time is the server's, assigned when the message was stored: what "published before"
 * means for an outcome (CONTRACT §4).
 */
export async function storedAt(
  jsm: JetStreamManager,
  stream: string,
  seq: number,
  subject?: string,
): Promise<{ readonly seq: number; readonly at: number } | undefined> {
  // A SeqMsgRequest that also carries next_by_subj (the type lists it for direct gets only; the
  // STREAM.MSG.GET API has it too).
  const query: SeqMsgRequest & { next_by_subj?: string } = subject === undefined ? { seq } : { seq, next_by_subj: subject };
  const stored = await jsm.streams.getMessage(stream, query);
  if (stored === null) return undefined;
  const at = jetStreamTimeMs(stored.timestamp);
  if (at === undefined) throw new Error(`unreadable JetStream timestamp ${JSON.stringify(stored.timestamp)} (${stream} #${stored.seq})`);
  return { seq: stored.seq, at };
}

/** What a stored job message says about the admission that published it. */
export interface StoredJob {
  readonly jobId: string;
  readonly attempt: number;
  readonly lease: { readonly id: string; readonly token: string };
}

/** The fields of a job message (CONTRACT §4) that name its admission. */
const StoredJobMessage = JobMessage.pick({ jobId: true, attempt: true, lease: true });

/**
 * Reads the job message stored at a sequence of `stream` (the jobs stream): its job, attempt and
 * lease; undefined when there is none or it is not a job message.
 */
export function storedJobReader(jsm: JetStreamManager, stream: string): (seq: number) => Promise<StoredJob | undefined> {
  return async (seq) => {
    const stored = await jsm.streams.getMessage(stream, { seq });
    if (stored === null) return undefined;
    let body: unknown;
    try {
      body = stored.json();
    } catch {
      return undefined;
    }
    const parsed = StoredJobMessage.safeParse(body);
    return parsed.success ? parsed.data : undefined;
  };
}
