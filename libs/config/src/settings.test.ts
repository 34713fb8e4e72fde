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
    ['JANUS_NAMESPACE', 'Bad-Name', 'must match'],
    ['JANUS_INGRESS_PORT', 'eighty', 'expected number'],
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

  it('treats empty strings as unset', () => {
    expect(loadSettings({ REDIS_URL: '' }).redisUrl).toBe('redis://127.0.0.1:6379');
  });
});
