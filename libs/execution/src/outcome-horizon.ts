import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { storedAt, type NatsNames } from '@janus/messaging';

/**
 * Given `now` (ms, Redis time, read BEFORE the call), the time before which every outcome reported
 * to `<NS>_OUTCOMES` has been processed by the scheduler's `scheduler-outcomes` consumer (≤ now).
 *
 * The reaper reaps only leases that expired by then. An outcome counts if it was reported (stored
 * by JetStream) before its lease's expiry, even when the scheduler processes it later (it was down
 * or behind): such a lease must not be reaped while its outcome may still wait in the consumer.
 */
export type OutcomeHorizon = (now: number) => Promise<number>;

/**
 * The horizon from the consumer's state, in one request when the consumer is idle (consumer info)
 * and two when it is not (plus the stored time of the first message past its ack floor):
 *
 * - nothing pending and nothing unacked: every outcome stored before the info request has been
 *   processed (acked after its settle), and one stored later carries a later time than `now`, which
 *   was read before the request: the horizon is `now`;
 * - else every message up to the ack floor has been processed, and every unprocessed one comes
 *   after it in the stream, so it was stored no earlier than the first message after the floor: the
 *   horizon is that message's time (or `now` if none is left).
 *
 * A consumer that does not exist yet (no scheduler has run) will deliver the whole stream: its
 * floor is 0. Assumes the NATS server's and Redis's clocks agree (NTP); a skew of d ms makes a
 * report up to d ms early or late.
 */
export function outcomeHorizon(jsm: JetStreamManager, names: NatsNames): OutcomeHorizon {
  const stream = names.streams.outcomes;
  return async (now) => {
    let floor = 0;
    try {
      const info = await jsm.consumers.info(stream, names.consumers.schedulerOutcomes);
      if (info.num_pending === 0 && info.num_ack_pending === 0) return now;
      floor = info.ack_floor.stream_seq;
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound)) throw error;
    }
    const first = await storedAt(jsm, stream, floor + 1, names.subjects.allOutcomes);
    return first === undefined ? now : Math.min(now, first.at);
  };
}
