import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadSettings } from './settings.js';

function errorOf(env: Record<string, string>): ConfigError {
  try {
    loadSettings(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadSettings', () => {
  it('applies the contract defaults', () => {
    const s = loadSettings({});
    expect(s.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(s.natsServers).toEqual(['nats://127.0.0.1:4222']);
    expect(s.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/janus');
    expect(s.namespace).toBe('janus');
    expect(s.logLevel).toBe('info');
    expect(s.ports).toEqual({ ingress: 8080, admin: 8081, persister: 8082, scheduler: 8083 });
    expect(s.adminToken).toBeUndefined();
    expect(s.signingKeyGenerated).toBe(true);
    expect(Object.isFrozen(s)).toBe(true);
  });

  it('splits a comma-separated NATS_URL', () => {
    expect(loadSettings({ NATS_URL: 'nats://a:4222, nats://b:4222' }).natsServers).toEqual([
      'nats://a:4222',
      'nats://b:4222',
    ]);
  });

  it.each([
    ['REDIS_URL', 'not-a-url', 'must be a URL with scheme redis:// or rediss://'],
    ['NATS_URL', 'http://x', 'must be a URL with scheme nats://'],
    ['DATABASE_URL', 'mysql://x', 'must be a URL with scheme postgres://'],
    ['REDIS_URL', 'redis://127.0.0.1:6379/abc', 'database'],
    ['REDIS_URL', 'redis://', 'no host'],
    ['NATS_URL', 'nats://', 'no host'],
    ['NATS_URL', 'nats://a:4222,nats://', 'no host'],
    ['DATABASE_URL', 'postgres://', 'no host'],
    ['DATABASE_URL', 'postgres://db.example/janus', 'no user'],
    ['JANUS_NAMESPACE', 'Bad-Name', 'must match'],
    ['JANUS_INGRESS_PORT', 'eighty', 'must be a decimal integer from 1 to 65535'],
    ['JANUS_ADMIN_PORT', '70000', '65535'],
    ['LOG_LEVEL', 'loud', 'Invalid option'],
    ['JANUS_SIGNING_KEY', 'short', 'at least 32'],
    ['JANUS_HOST', 'localhost', 'must be an IP address'],
  ])('names %s when it is %j', (variable, value, fragment) => {
    const error = errorOf({ [variable]: value });
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]?.variable).toBe(variable);
    expect(error.message).toContain(variable);
    expect(error.issues[0]?.message).toContain(fragment);
  });

  it('listens on loopback in development and on every address elsewhere, unless JANUS_HOST says', () => {
    expect(loadSettings({}).host).toBe('127.0.0.1');
    expect(loadSettings({ NODE_ENV: 'test' }).host).toBe('0.0.0.0');
    expect(loadSettings({ NODE_ENV: 'production', JANUS_SIGNING_KEY: 'k'.repeat(32) }).host).toBe('0.0.0.0');
    expect(loadSettings({ JANUS_HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    expect(loadSettings({ NODE_ENV: 'test', JANUS_HOST: '::1' }).host).toBe('::1');
  });

  it('requires a signing key in production', () => {
    expect(errorOf({ NODE_ENV: 'production' }).issues[0]?.variable).toBe('JANUS_SIGNING_KEY');
  });

  it('requires an admin token of at least 32 characters in production, 16 elsewhere', () => {
    const production = { NODE_ENV: 'production', JANUS_SIGNING_KEY: 'k'.repeat(32) };
    const short = errorOf({ ...production, JANUS_ADMIN_TOKEN: 'a'.repeat(20) });
    expect(short.issues).toEqual([{ variable: 'JANUS_ADMIN_TOKEN', message: 'must be at least 32 characters when NODE_ENV=production' }]);
    expect(short.message).toContain('JANUS_ADMIN_TOKEN');
    expect(short.message).not.toContain('a'.repeat(20)); // the value is never echoed
    expect(errorOf({ ...production, JANUS_ADMIN_TOKEN: 'a'.repeat(31) }).issues[0]?.variable).toBe('JANUS_ADMIN_TOKEN');
    expect(loadSettings({ ...production, JANUS_ADMIN_TOKEN: 'a'.repeat(32) }).adminToken).toBe('a'.repeat(32));
    // Without a token the settings load; policy-admin refuses to start (the other apps need none).
    expect(loadSettings(production).adminToken).toBeUndefined();
    // Both production problems at once.
    expect(errorOf({ NODE_ENV: 'production', JANUS_ADMIN_TOKEN: 'a'.repeat(20) }).issues.map((i) => i.variable)).toEqual(['JANUS_SIGNING_KEY', 'JANUS_ADMIN_TOKEN']);
    for (const NODE_ENV of ['development', 'test']) {
      expect(loadSettings({ NODE_ENV, JANUS_ADMIN_TOKEN: 'a'.repeat(16) }).adminToken).toBe('a'.repeat(16));
      expect(errorOf({ NODE_ENV, JANUS_ADMIN_TOKEN: 'a'.repeat(15) }).issues[0]).toEqual({ variable: 'JANUS_ADMIN_TOKEN', message: 'must be at least 16 characters' });
    }
  });

  it('reads NATS_USER and NATS_PASSWORD together, never showing the password', () => {
    expect(loadSettings({}).natsAuth).toBeUndefined();
    const auth = loadSettings({ NATS_USER: 'janus', NATS_PASSWORD: 's3cret-password' }).natsAuth;
    expect(auth?.user).toBe('janus');
    expect(auth?.password).toBe('s3cret-password');
    // A logged or serialized settings object does not carry it.
    const s = loadSettings({ NATS_USER: 'janus', NATS_PASSWORD: 's3cret-password' });
    expect(JSON.stringify(s)).not.toContain('s3cret');
    expect(inspect(s, { depth: 5 })).not.toContain('s3cret');
    // Both or neither; the error names the missing one and not the other's value.
    const noPassword = errorOf({ NATS_USER: 'janus' });
    expect(noPassword.issues).toEqual([{ variable: 'NATS_PASSWORD', message: 'is required when NATS_USER is set (set both or neither)' }]);
    const noUser = errorOf({ NATS_PASSWORD: 's3cret-password' });
    expect(noUser.issues).toEqual([{ variable: 'NATS_USER', message: 'is required when NATS_PASSWORD is set (set both or neither)' }]);
    expect(noUser.message).not.toContain('s3cret');
    // Empty counts as unset.
    expect(loadSettings({ NATS_USER: '', NATS_PASSWORD: '' }).natsAuth).toBeUndefined();
    expect(errorOf({ NATS_USER: 'janus', NATS_PASSWORD: '' }).issues[0]?.variable).toBe('NATS_PASSWORD');
  });

  it('treats empty strings as unset', () => {
    expect(loadSettings({ REDIS_URL: '' }).redisUrl).toBe('redis://127.0.0.1:6379');
  });

  it('treats empty strings as unset for credentials, secrets, URLs, log settings, NODE_ENV and JANUS_HOST', () => {
    const s = loadSettings({
      REDIS_URL: '',
      NATS_URL: '',
      DATABASE_URL: '',
      NATS_USER: '',
      NATS_PASSWORD: '',
      JANUS_ADMIN_TOKEN: '',
      JANUS_SIGNING_KEY: '',
      LOG_LEVEL: '',
      NODE_ENV: '',
      JANUS_HOST: '',
      NODE_EXTRA_CA_CERTS: '',
    });
    expect(s).toMatchObject({ natsServers: ['nats://127.0.0.1:4222'], databaseUrl: 'postgres://postgres@127.0.0.1:5432/janus', natsAuth: undefined, adminToken: undefined, signingKeyGenerated: true, logLevel: 'info', nodeEnv: 'development', host: '127.0.0.1' });
  });

  it.each(['JANUS_NAMESPACE', 'JANUS_INGRESS_PORT', 'JANUS_ADMIN_PORT', 'JANUS_PERSISTER_PORT', 'JANUS_SCHEDULER_PORT', 'JANUS_STREAM_REPLICAS', 'JANUS_REDIS_WAIT_REPLICAS'])(
    'refuses an empty %s instead of running with its default',
    (variable) => {
      const error = errorOf({ [variable]: '' });
      expect(error.issues).toEqual([{ variable, message: 'is set but empty: give it a value, or leave it out for the default' }]);
      expect(error.message).toContain(variable);
    },
  );

  it('names every empty and every bad variable at once', () => {
    expect(errorOf({ JANUS_NAMESPACE: '', JANUS_INGRESS_PORT: '', JANUS_ADMIN_PORT: '0x2000' }).issues.map((i) => i.variable)).toEqual(['JANUS_NAMESPACE', 'JANUS_INGRESS_PORT', 'JANUS_ADMIN_PORT']);
  });

  it.each(['0x2000', '0o17', '0b1', '1e3', '8080.0', '8080.5', ' 8080', '8080 ', '+8080', '-1', '0', '65536', '99999999999999999999', 'Infinity'])(
    'accepts only decimal ports from 1 to 65535: refuses %j',
    (value) => {
      for (const variable of ['JANUS_INGRESS_PORT', 'JANUS_ADMIN_PORT', 'JANUS_PERSISTER_PORT', 'JANUS_SCHEDULER_PORT']) {
        expect(errorOf({ [variable]: value }).issues).toEqual([{ variable, message: 'must be a decimal integer from 1 to 65535' }]);
      }
    },
  );

  it('reads decimal ports and replica counts', () => {
    expect(loadSettings({ JANUS_INGRESS_PORT: '1', JANUS_ADMIN_PORT: '65535', JANUS_PERSISTER_PORT: '8192', JANUS_SCHEDULER_PORT: '09090' }).ports).toEqual({ ingress: 1, admin: 65_535, persister: 8192, scheduler: 9090 });
    expect(loadSettings({ JANUS_STREAM_REPLICAS: '3', JANUS_REDIS_WAIT_REPLICAS: '0' })).toMatchObject({ streamReplicas: 3, redisWaitReplicas: 0 });
    expect(errorOf({ JANUS_STREAM_REPLICAS: '0x3' }).issues).toEqual([{ variable: 'JANUS_STREAM_REPLICAS', message: 'must be a decimal integer from 1 to 5' }]);
    expect(errorOf({ JANUS_REDIS_WAIT_REPLICAS: '6' }).issues).toEqual([{ variable: 'JANUS_REDIS_WAIT_REPLICAS', message: 'must be a decimal integer from 0 to 5' }]);
  });
});

describe('loadSettings: TLS (docs/operations.md#tls)', () => {
  it('checks that NODE_EXTRA_CA_CERTS names a readable PEM certificate file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'janus-settings-'));
    try {
      const pem = path.join(dir, 'ca.crt');
      writeFileSync(pem, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
      const notPem = path.join(dir, 'ca.der');
      writeFileSync(notPem, 'not a certificate');
      expect(() => loadSettings({ NODE_EXTRA_CA_CERTS: pem })).not.toThrow();
      for (const file of [notPem, path.join(dir, 'missing.crt')]) {
        const error = errorOf({ NODE_EXTRA_CA_CERTS: file });
        expect(error.issues).toHaveLength(1);
        expect(error.issues[0]?.variable).toBe('NODE_EXTRA_CA_CERTS');
        expect(error.issues[0]?.message).toContain('PEM');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes URL schemes in lower case, so that REDISS:// still turns TLS on', () => {
    const s = loadSettings({ REDIS_URL: 'REDISS://cache:6380', NATS_URL: 'TLS://a:4222,nats://b:4222', DATABASE_URL: 'Postgres://janus@db/janus?sslmode=verify-full' });
    expect(s.redisUrl).toBe('rediss://cache:6380');
    expect(s.natsServers).toEqual(['tls://a:4222', 'nats://b:4222']);
    expect(s.databaseUrl).toBe('postgres://janus@db/janus?sslmode=verify-full');
  });
});
