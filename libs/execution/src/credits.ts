import type { JetStreamClient } from '@nats-io/jetstream';
import { creditLedgerMessage, CreditsRelay, type CreditEntry, type Limiter } from '@janus/limiter';
import { publishJson, type NatsNames } from '@janus/messaging';

/**
 * Publishes credits movements to the ledger stream (`<ns>.ledger.<tenant>`, msgID = the entry id:
 * JetStream drops a re-publish within its dedupe window, the persister's primary key after it).
 * Resolves once JetStream stored every one; rejects if any was not.
 */
export async function publishCreditEntries(js: JetStreamClient, names: NatsNames, entries: readonly CreditEntry[]): Promise<void> {
  await Promise.all(entries.map((e) => publishJson(js, names.subjects.ledger(e.tenant), creditLedgerMessage(e), e.id)));
}

/** The credits outbox relay of one scheduler instance (docs/credits.md): started, it publishes until stopped. */
export function creditsRelay(opts: { limiter: Limiter; js: JetStreamClient; names: NatsNames; consumer: string; onError?: (error: unknown) => void; intervalMs?: number; claimIdleMs?: number }): CreditsRelay {
  return new CreditsRelay({
    credits: opts.limiter.credits,
    consumer: opts.consumer,
    publish: (entries) => publishCreditEntries(opts.js, opts.names, entries),
    ...(opts.onError ? { onError: opts.onError } : {}),
    ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}),
    ...(opts.claimIdleMs !== undefined ? { claimIdleMs: opts.claimIdleMs } : {}),
  });
}
