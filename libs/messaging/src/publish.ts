import { JetStreamApiError, JetStreamError, type JetStreamClient } from '@nats-io/jetstream';
import { AckPublisher, PublishRejected } from './ack-publisher.js';
import { JsonText } from './json.js';
import type { PublishResult } from './publish-result.js';

export type { PublishResult } from './publish-result.js';

/** Where acknowledged publishes go: the nats.js JetStream client, or the hot path's AckPublisher. */
export type JetStreamTarget = JetStreamClient | AckPublisher;

/**
 * Publishes JSON with a msgID (JetStream dedupes on it) and waits for the stream's ack. A `JsonText`
 * body is sent as it is; anything else is serialized with JSON.stringify.
 */
export function publishJson(
  js: JetStreamTarget,
  subject: string,
  body: unknown,
  msgID: string,
  opts: { timeoutMs?: number } = {},
): Promise<PublishResult> {
  const timeout = opts.timeoutMs ?? 5_000;
  let data: string;
  try {
    data = body instanceof JsonText ? body.text : JSON.stringify(body);
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
  // Not an async function: the hot path (AckPublisher) hands its promise through without another hop.
  if (js instanceof AckPublisher) return js.publish(subject, data, msgID, timeout);
  return js.publish(subject, data, { msgID, timeout }).then((ack) => ({ seq: ack.seq, duplicate: ack.duplicate }));
}

/**
 * Publishes many messages concurrently (never one at a time: PERF-NOTES) and reports which failed.
 * Order of acks is irrelevant; msgIDs make a retry of the failed ones safe.
 */
export async function publishAll(
  js: JetStreamTarget,
  messages: readonly { subject: string; body: unknown; msgID: string }[],
  opts: { timeoutMs?: number } = {},
): Promise<{ ok: boolean; failed: number[]; results: (PublishResult | undefined)[]; errors: unknown[] }> {
  if (messages.length === 1) {
    // The common case (one job per request), without allSettled's bookkeeping.
    const m = messages[0]!;
    try {
      return { ok: true, failed: [], results: [await publishJson(js, m.subject, m.body, m.msgID, opts)], errors: [] };
    } catch (error) {
      return { ok: false, failed: [0], results: [undefined], errors: [error] };
    }
  }
  const settled = await Promise.allSettled(messages.map((m) => publishJson(js, m.subject, m.body, m.msgID, opts)));
  const failed: number[] = [];
  const errors: unknown[] = [];
  const results = settled.map((r, i) => {
    if (r.status === 'fulfilled') return r.value;
    failed.push(i);
    errors.push(r.reason);
    return undefined;
  });
  return { ok: failed.length === 0, failed, results, errors };
}

// (nats-core's NoRespondersError names itself 'NoResponders'.)
const NO_RESPONDERS = new Set(['JetStreamNotEnabled', 'NoResponders', 'NoRespondersError']);

/**
 * What a failed acknowledged publish says about the message: `refused` when the stream answered
 * that it did not store it (or the request never left: no stream listens, the connection was
 * closed before sending, the message was over the server's max_payload), `unknown` when no answer came (a timeout, a connection lost while
 * waiting) — the message may have been stored, and only a re-publish with the same msgID tells.
 */
export function publishFailure(error: unknown): 'refused' | 'unknown' {
  if (error instanceof PublishRejected) return 'refused';
  if (error instanceof JetStreamApiError || (error instanceof JetStreamError && /no stream|503/i.test(error.message))) return 'refused';
  // nats.js's answers to "no responders" (no stream listens on the subject): JetStreamNotEnabled
  // on a JetStream publish, NoRespondersError (or a RequestError caused by one) on a plain request.
  // (nats.js does not export these classes at run time: they are recognised by name.)
  if (error instanceof Error && NO_RESPONDERS.has(error.name)) return 'refused';
  // A message over the server's max_payload: the client refuses it before sending anything.
  if (error instanceof Error && error.name === 'InvalidArgumentError' && /max_payload/.test(error.message)) return 'refused';
  if (error instanceof Error && error.cause instanceof Error && NO_RESPONDERS.has(error.cause.name)) return 'refused';
  return 'unknown';
}
