import { findSecrets } from '@janus/testing';
import { describe, expect, it } from 'vitest';
import { generateApiKey, tokenFingerprint } from './api-keys.js';

// The log scan of every test run finds secrets by shape: if the shape of a key changes, this fails
// before the scan silently stops seeing keys.
describe('the secret scan knows the shape of API keys', () => {
  it('finds a generated key inside a log line, but not its id, hash or an admin token fingerprint', () => {
    for (let i = 0; i < 50; i += 1) {
      const { keyId, key, keyHash } = generateApiKey();
      expect(findSecrets(JSON.stringify({ msg: 'x', detail: `with ${key} inside` })).map((f) => f.kind)).toEqual(['api key']);
      expect(findSecrets(JSON.stringify({ keyId, keyHash, actor: tokenFingerprint(key) }))).toEqual([]);
    }
  });
});
