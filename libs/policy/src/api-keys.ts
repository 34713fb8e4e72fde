import { createHash, hash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Keys look like `jns_<keyId>_<secret>`; only the SHA-256 of the whole key is stored. */
export function generateApiKey(): { keyId: string; key: string; keyHash: string } {
  const keyId = randomBytes(6).toString('hex');
  const key = `jns_${keyId}_${randomBytes(24).toString('base64url')}`;
  return { keyId, key, keyHash: hashApiKey(key) };
}

/** Runs on every ingress request: the one-shot `hash` is ~2.5× cheaper than a Hash object. */
export function hashApiKey(key: string): string {
  return hash('sha256', key, 'hex');
}

/** A short, non-reversible name for an admin token, for the audit log (`tok_` + 12 hex of its SHA-256). */
export function tokenFingerprint(token: string): string {
  return `tok_${createHash('sha256').update(token).digest('hex').slice(0, 12)}`;
}

/** Compares two secrets in constant time (whatever their lengths: both are hashed first). */
export function secretsEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Active API keys (hash → owner) held in memory, for ingress: call `refresh()` on every config
 * event and watcher poll (`startRuntime({ watchApiKeys: true })` does this), so that a
 * revoked key stops working as soon as its revocation is announced. Only hashes are held.
 */
export class ApiKeyCache {
  private keys = new Map<string, { readonly tenant: string; readonly keyId: string }>();
  private loadedOnce = false;

  constructor(private readonly store: { activeKeys(): Promise<Map<string, { keyId: string; tenant: string }>> }) {}

  /** True after the first successful refresh. */
  get loaded(): boolean {
    return this.loadedOnce;
  }

  get size(): number {
    return this.keys.size;
  }

  /** Reloads every active key; the new map replaces the old one in one assignment. */
  async refresh(): Promise<void> {
    this.keys = await this.store.activeKeys();
    this.loadedOnce = true;
  }

  lookup(bearerKey: string): { tenant: string; keyId: string } | undefined {
    const owner = this.keys.get(hashApiKey(bearerKey));
    return owner ? { tenant: owner.tenant, keyId: owner.keyId } : undefined;
  }
}
