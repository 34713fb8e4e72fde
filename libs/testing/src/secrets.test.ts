import { describe, expect, it } from 'vitest';
import { findSecrets, TEST_SECRETS } from './secrets.js';

describe('findSecrets', () => {
  it('finds the configured secrets, bearer credentials and passwords in URLs', () => {
    expect(findSecrets(`{"msg":"x","detail":"${TEST_SECRETS.adminToken}"}`).map((f) => f.kind)).toEqual(['configured secret']);
    expect(findSecrets(`headers: { authorization: 'Bearer abcdefgh12345678' }`).map((f) => f.kind)).toEqual(['bearer credential']);
    expect(findSecrets('connecting to postgres://janus:s3cret@db:5432/janus').map((f) => f.kind)).toEqual(['password in a URL']);
    expect(findSecrets('nats://worker:pw@127.0.0.1:4222', ['pw-that-is-not-there'])).toHaveLength(1);
  });

  it('masks what it reports and passes ordinary lines', () => {
    const [finding] = findSecrets(`token ${TEST_SECRETS.signingKey}`);
    expect(finding?.masked).not.toContain(TEST_SECRETS.signingKey.slice(4, -2));
    for (const line of [
      '{"level":30,"app":"ingress","msg":"listening","url":"http://127.0.0.1:8080"}',
      '{"msg":"redis","url":"redis://127.0.0.1:6379","key":"janus:{janus}:dep:x"}',
      '{"msg":"retry scheduled","jobId":"0192f5a4-1b2c-7d3e-8f40-123456789abc","attempt":2,"lease":"AbCdEfGhIjKl1_3"}',
      '{"msg":"bearer tokens are checked"}',
    ]) {
      expect(findSecrets(line), line).toEqual([]);
    }
  });
});
