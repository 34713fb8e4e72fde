import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Lease tokens: `<leaseId>.<base64url HMAC-SHA256(signingKey, namespace|leaseId)>`.
 * The MAC is checked before Redis is touched, so a forged or foreign (other namespace) token costs
 * nothing. The token binds the lease id only; jobId and attempt are bound through the lease record
 * (keyed by the id, written once at admission) and come back in every settle/extend answer.
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

  sign(leaseId: string): string {
    return `${leaseId}.${this.#mac(leaseId)}`;
  }

  /** The lease id of a genuine token, or undefined. */
  verify(token: string): string | undefined {
    const dot = token.lastIndexOf('.');
    if (dot <= 0) return undefined;
    const id = token.slice(0, dot);
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return undefined;
    const given = Buffer.from(token.slice(dot + 1), 'utf8');
    const expected = Buffer.from(this.#mac(id), 'utf8');
    return given.length === expected.length && timingSafeEqual(given, expected) ? id : undefined;
  }

  #mac(leaseId: string): string {
    return createHmac('sha256', this.#key).update(`${this.#namespace}|${leaseId}`).digest('base64url');
  }
}
