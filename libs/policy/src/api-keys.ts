import { createHash, randomBytes } from 'node:crypto';

/** Keys look like `jns_<keyId>_<secret>`; only the SHA-256 of the whole key is stored. */
export function generateApiKey(): { keyId: string; key: string; keyHash: string } {
  const keyId = randomBytes(6).toString('hex');
  const key = `jns_${keyId}_${randomBytes(24).toString('base64url')}`;
  return { keyId, key, keyHash: hashApiKey(key) };
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}
