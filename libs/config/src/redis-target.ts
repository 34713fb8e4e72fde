/**
 * What `REDIS_URL` names: one Redis server, or a Redis Cluster (docs/scaling.md).
 *
 *   redis://[user:password@]host:port[/db]          one server (rediss:// with TLS)
 *   redis+cluster://[user:password@]h1:p1,h2:p2,…   a cluster, from one or more seed nodes
 *                                                  (rediss+cluster:// with TLS); the client
 *                                                  discovers the others from the seeds
 *   redis://h1:p1,redis://h2:p2,…                   the same: several redis:// seeds name a cluster
 *
 * Credentials given on the first seed apply to every node (a cluster has one ACL setup per node,
 * the same everywhere in practice). A database number cannot be given for a cluster: a cluster has
 * database 0 only.
 */
export type RedisTarget =
  | { readonly mode: 'single'; readonly url: string }
  | {
      readonly mode: 'cluster';
      readonly nodes: readonly { readonly host: string; readonly port: number }[];
      readonly tls: boolean;
      readonly username: string | undefined;
      /** Not enumerable: a logged target never shows it. */
      readonly password: string | undefined;
    };

const SINGLE = /^rediss?:$/;
const CLUSTER = /^rediss?\+cluster:$/;

/** Parses REDIS_URL; throws an Error whose message says what is wrong (settings turn it into a ConfigError). */
export function parseRedisTarget(raw: string): RedisTarget {
  const value = raw.trim();
  const scheme = (/^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1] ?? '').toLowerCase() + ':';
  if (CLUSTER.test(scheme)) {
    // One URL with several hosts: new URL() takes only one, so split the authority by hand.
    const rest = value.slice(scheme.length).replace(/^\/\//, '');
    const at = rest.lastIndexOf('@');
    const userinfo = at >= 0 ? rest.slice(0, at) : '';
    // Credentials come once, before the first seed (a comma in them must be %2C).
    if (userinfo.includes(',')) throw new Error('credentials go before the first host only (redis+cluster://user:password@h1:p1,h2:p2); write a comma in them as %2C');
    const hostsAndPath = at >= 0 ? rest.slice(at + 1) : rest;
    const slash = hostsAndPath.indexOf('/');
    const hosts = slash >= 0 ? hostsAndPath.slice(0, slash) : hostsAndPath;
    const path = slash >= 0 ? hostsAndPath.slice(slash) : '';
    if (path !== '' && path !== '/' && path !== '/0') throw new Error('a cluster has database 0 only: drop the /<db> from the URL');
    const tls = scheme.startsWith('rediss');
    const seeds = hosts.split(',').map((h) => h.trim()).filter((h) => h.length > 0);
    const credentials = userinfo === '' ? undefined : userinfo;
    return cluster(seeds.map((h) => `${tls ? 'rediss' : 'redis'}://${credentials ? `${credentials}@` : ''}${h}`), tls);
  }
  // Seeds are split where a new redis:// or rediss:// URL starts, so a comma inside a password stays.
  const parts = value.split(/,(?=\s*rediss?:\/\/)/i).map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new Error('must be a URL with scheme redis://, rediss:// or redis+cluster://');
  for (const part of parts) {
    if (!SINGLE.test(schemeOf(part))) throw new Error('must be a URL with scheme redis:// or rediss:// (or redis+cluster:// for a cluster)');
  }
  if (parts.length === 1) {
    const one = new URL(parts[0]!);
    if (one.hostname === '') throw new Error('names no host: redis://<host>:<port>');
    // ioredis would send SELECT NaN (and fail after start) or, for a database the server does not
    // have, go on in database 0: a digits-only index, checked against the server at connect.
    if (!/^\/?(\d{1,5})?$/.test(one.pathname)) throw new Error('the database after the host must be a number: redis://<host>:<port>/<db>');
    return { mode: 'single', url: lowerScheme(parts[0]!) };
  }
  const tls = parts.map((p) => schemeOf(p) === 'rediss:');
  if (tls.some((t) => t !== tls[0])) throw new Error('cluster seeds must all be redis:// or all rediss://');
  return cluster(parts, tls[0] === true);
}

function schemeOf(url: string): string {
  try {
    return new URL(url).protocol.toLowerCase();
  } catch {
    return '';
  }
}

/** The scheme in lower case: the clients look for `rediss://` (TLS) literally, not `REDISS://`. */
function lowerScheme(url: string): string {
  return url.replace(/^[a-z][a-z0-9+.-]*:/i, (s) => s.toLowerCase());
}

function cluster(seeds: readonly string[], tls: boolean): RedisTarget {
  if (seeds.length === 0) throw new Error('a cluster URL needs at least one host:port');
  let username: string | undefined;
  let password: string | undefined;
  const nodes = seeds.map((seed, i) => {
    let url: URL;
    try {
      url = new URL(seed);
    } catch {
      throw new Error(`cluster seed ${i + 1} is not host:port`);
    }
    if (url.hostname === '') throw new Error(`cluster seed ${i + 1} has no host`);
    if (url.pathname !== '' && url.pathname !== '/' && url.pathname !== '/0') throw new Error('a cluster has database 0 only: drop the /<db> from the URL');
    const user = url.username === '' ? undefined : safeDecode(url.username);
    const pass = url.password === '' ? undefined : safeDecode(url.password);
    if (i === 0) {
      username = user;
      password = pass;
    } else if ((user !== undefined || pass !== undefined) && (user !== username || pass !== password)) {
      throw new Error('every cluster seed must have the same credentials (or only the first any)');
    }
    if (url.port === '0') throw new Error(`cluster seed ${i + 1} has port 0`);
    return Object.freeze({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 6379) });
  });
  const target = { mode: 'cluster' as const, nodes: Object.freeze(nodes), tls, username } as Extract<RedisTarget, { mode: 'cluster' }>;
  Object.defineProperty(target, 'password', { value: password, enumerable: false });
  return Object.freeze(target);
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new Error('the credentials are not valid percent-encoding');
  }
}
