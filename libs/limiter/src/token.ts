import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { FAIL_OPEN_CALL_SUFFIX, parseLeaseId } from './keys.js';

/**
 * Lease tokens: `<leaseId>.<mac>`, lease ids being `<call id>_<n>` (see Keys.leaseLocation).
 *
 *   callKey = HMAC-SHA256(signingKey, namespace|callId)       one per admission call
 *   mac     = base64url SHA-256(callKey|n)                     one cheap hash per lease
 *
 * One HMAC per call instead of per lease: an HMAC object per job was the largest single cost of
 * admission in Node. SHA-256 keyed by a secret prefix is a sound MAC here because `n` is a short
 * decimal: forging a sibling's token from one's own would need SHA-256 preimages, and length
 * extension only yields messages with padding bytes, which `verify` rejects by shape first.
 * The MAC is checked before Redis is touched, so a forged or foreign (other namespace) token costs
 * nothing. The token binds the lease id only; jobId and attempt are bound through the lease record
 * (written once at admission) and come back in every settle/extend answer.
 */
export class LeaseTokens {
  readonly #key: Buffer;
  readonly #namespace: string;
  readonly #prefix = randomBytes(9).toString('base64url');
  #counter = 0;

  constructor(signingKey: string, namespace: string) {
    this.#key = Buffer.from(signingKey, 'utf8');
    this.#namespace = namespace;
  }

  /**
   * An admission call's id, unique across instances (random per-process prefix) and cheap (a
   * counter). Its leases are `<call id>_<n>` (see Keys.leaseLocation).
   */
  nextCallId(): string {
    this.#counter += 1;
    return `${this.#prefix}${this.#counter.toString(36)}`;
  }

  /** The call id of a fail-open admission: as `nextCallId`, marked (isFailOpenLeaseId). */
  nextFailOpenCallId(): string {
    return `${this.nextCallId()}${FAIL_OPEN_CALL_SUFFIX}`;
  }

  /** Signs the leases of one call: `(n) => token of lease <callId>_<n>`. */
  signer(callId: string): (n: number) => string {
    const callKey = this.#callKey(callId);
    return (n) => `${callId}_${n}.${hash('sha256', `${callKey}|${n}`, 'base64url')}`;
  }

  /** The token of a lease id this limiter issued (a malformed id is a fault: ids only come from admit). */
  sign(leaseId: string): string {
    const parts = parseLeaseId(leaseId);
    if (!parts) throw new Error(`not a lease id: ${leaseId}`);
    return this.signer(parts.callId)(Number(parts.n));
  }

  /** The lease id of a genuine token, or undefined. */
  verify(token: string): string | undefined {
    const dot = token.lastIndexOf('.');
    if (dot <= 0) return undefined;
    const id = token.slice(0, dot);
    const parts = parseLeaseId(id);
    if (!parts) return undefined;
    const given = Buffer.from(token.slice(dot + 1), 'utf8');
    const expected = Buffer.from(hash('sha256', `${this.#callKey(parts.callId)}|${parts.n}`, 'base64url'), 'utf8');
    return given.length === expected.length && timingSafeEqual(given, expected) ? id : undefined;
  }

  #callKey(callId: string): string {
    return createHmac('sha256', this.#key).update(`${this.#namespace}|${callId}`).digest('base64url');
  }
}
