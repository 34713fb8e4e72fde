import { findSecrets } from '@janus/testing';
import { describe, expect, it } from 'vitest';
import { LeaseTokens } from '../src/token.js';

// The log scan of every test run finds lease tokens by shape: if the token format changes, this
// fails before the scan silently stops seeing them.
describe('the secret scan knows the shape of lease tokens', () => {
  it('finds a signed token in a log line, but not the lease id alone', () => {
    const tokens = new LeaseTokens('k'.repeat(32), 'ns');
    for (let call = 0; call < 50; call += 1) {
      const sign = tokens.signer(tokens.nextCallId());
      for (const n of [1, 7, 1000]) {
        const token = sign(n);
        const leaseId = token.slice(0, token.lastIndexOf('.'));
        expect(findSecrets(`{"msg":"outcome ignored","leaseToken":"${token}"}`).map((f) => f.kind)).toEqual(['lease token']);
        expect(findSecrets(`{"msg":"lease expired","lease":"${leaseId}","jobId":"0192f5a4-1b2c-7d3e-8f40-123456789abc"}`)).toEqual([]);
      }
    }
  });
});
