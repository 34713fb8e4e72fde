import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseRedisTarget } from './redis-target.js';
import { ConfigError, loadSettings } from './settings.js';

describe('parseRedisTarget', () => {
  it('one server: the URL as given, scheme in lower case', () => {
    expect(parseRedisTarget('redis://127.0.0.1:6379')).toEqual({ mode: 'single', url: 'redis://127.0.0.1:6379' });
    expect(parseRedisTarget('REDISS://cache:6380/2')).toEqual({ mode: 'single', url: 'rediss://cache:6380/2' });
  });

  it('redis+cluster:// names a cluster by its seeds; credentials apply to every node and never print', () => {
    const t = parseRedisTarget('rediss+cluster://janus:s3cret@a:7001, b:7002,[::1]:7003');
    expect(t).toMatchObject({ mode: 'cluster', tls: true, username: 'janus', nodes: [{ host: 'a', port: 7001 }, { host: 'b', port: 7002 }, { host: '::1', port: 7003 }] });
    expect(t.mode === 'cluster' && t.password).toBe('s3cret');
    expect(inspect(t)).not.toContain('s3cret');
    expect(JSON.stringify(t)).not.toContain('s3cret');
    expect(parseRedisTarget('redis+cluster://h')).toMatchObject({ mode: 'cluster', tls: false, nodes: [{ host: 'h', port: 6379 }] });
  });

  it('a comma in a password stays in it', () => {
    expect(parseRedisTarget('redis://:pa,ss@h:6379')).toEqual({ mode: 'single', url: 'redis://:pa,ss@h:6379' });
    const t = parseRedisTarget('redis://:pa,ss@a:7001,redis://b:7002');
    expect(t).toMatchObject({ mode: 'cluster', nodes: [{ host: 'a' }, { host: 'b' }] });
    expect(t.mode === 'cluster' && t.password).toBe('pa,ss');
  });

  it('several redis:// seeds name a cluster too', () => {
    expect(parseRedisTarget('redis://:pw@a:7001,redis://b:7002')).toMatchObject({ mode: 'cluster', tls: false, nodes: [{ host: 'a', port: 7001 }, { host: 'b', port: 7002 }] });
  });

  it.each([
    ['http://x', 'scheme redis://'],
    ['redis://a:1,rediss://b:2', 'must all be redis:// or all rediss://'],
    ['redis+cluster://a:1/3', 'database 0 only'],
    ['redis://a:1/3,redis://b:2', 'database 0 only'],
    ['redis+cluster://', 'at least one host:port'],
    ['redis+cluster://a:99999', 'not host:port'],
    ['redis+cluster://a:1,u:p@b:2', 'before the first host only'],
    ['redis://:one@a:1,redis://:two@b:2', 'same credentials'],
    ['redis+cluster://a:0', 'port 0'],
    ['redis+cluster://:%zz@a:1', 'percent-encoding'],
  ])('refuses %j (%s)', (raw, fragment) => {
    expect(() => parseRedisTarget(raw)).toThrow(fragment);
  });
});

describe('settings: REDIS_URL and JANUS_STREAM_REPLICAS', () => {
  it('keeps REDIS_URL and says what it names', () => {
    const s = loadSettings({ REDIS_URL: 'redis+cluster://127.0.0.1:7101,127.0.0.1:7102' });
    expect(s.redisUrl).toBe('redis+cluster://127.0.0.1:7101,127.0.0.1:7102');
    expect(s.redis).toMatchObject({ mode: 'cluster', nodes: [{ port: 7101 }, { port: 7102 }] });
    expect(loadSettings({}).redis).toEqual({ mode: 'single', url: 'redis://127.0.0.1:6379' });
  });

  it('streams have one replica unless JANUS_STREAM_REPLICAS says (1 to 5)', () => {
    expect(loadSettings({}).streamReplicas).toBe(1);
    expect(loadSettings({ JANUS_STREAM_REPLICAS: '3' }).streamReplicas).toBe(3);
    for (const bad of ['0', '6', 'three', '2.5']) {
      try {
        loadSettings({ JANUS_STREAM_REPLICAS: bad });
        expect.unreachable(`JANUS_STREAM_REPLICAS=${bad} was accepted`);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).issues[0]?.variable).toBe('JANUS_STREAM_REPLICAS');
      }
    }
  });

  it('names REDIS_URL when a cluster URL is wrong', () => {
    try {
      loadSettings({ REDIS_URL: 'redis+cluster://a:1/4' });
      expect.unreachable('accepted');
    } catch (error) {
      expect((error as ConfigError).issues).toEqual([{ variable: 'REDIS_URL', message: expect.stringContaining('database 0 only') as string }]);
    }
  });
});
