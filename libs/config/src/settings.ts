import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { devSigningKey } from './dev-signing-key.js';
import { parseRedisTarget, type RedisTarget } from './redis-target.js';

/** Namespaces become Redis key prefixes, NATS subject tokens, stream names and a PostgreSQL schema. */
export const NAMESPACE_PATTERN = /^[a-z][a-z0-9_]{0,39}$/;

/**
 * A whole number written in decimal digits only, from `min` to `max`: not `0x2000`, `1e3`, `8080.0`
 * or ` 8080` (which `Number()` would all accept).
 */
export const decimalInteger = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]+$/, `must be a decimal integer from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be a decimal integer from ${min} to ${max}`);

const port = (fallback: number) => decimalInteger(1, 65_535).default(fallback);

/**
 * Variables whose empty value is an error rather than "unset": an empty namespace would silently
 * share the default deployment's data, and an empty number (a port, a replica count) is a mistake,
 * not a wish for the default. Every other variable treats empty as unset (`FOO= npm start` behaves
 * like leaving FOO out): credentials and secrets (a template may leave an optional one empty), URLs, log settings,
 * NODE_ENV, JANUS_HOST, NODE_EXTRA_CA_CERTS.
 */
export const EMPTY_IS_AN_ERROR: readonly string[] = [
  'JANUS_NAMESPACE',
  'JANUS_INGRESS_PORT',
  'JANUS_ADMIN_PORT',
  'JANUS_PERSISTER_PORT',
  'JANUS_SCHEDULER_PORT',
  'JANUS_STREAM_REPLICAS',
  'JANUS_REDIS_WAIT_REPLICAS',
  'JANUS_REDIS_TENANT_SHARDS',
];

/** The issue of an empty variable that must not be empty (EMPTY_IS_AN_ERROR). */
export const EMPTY_MESSAGE = 'is set but empty: give it a value, or leave it out for the default';

/**
 * A URL with one of `protocols` that names a host (`socketParam`: or a query parameter naming a
 * local socket instead, as `postgres:///janus?host=/run/postgresql`).
 */
const url = (protocols: readonly string[], socketParam?: string) =>
  z.string().superRefine((value, ctx) => {
    let parsed: URL | undefined;
    try {
      parsed = new URL(value);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || !protocols.includes(parsed.protocol)) {
      ctx.addIssue({ code: 'custom', message: `must be a URL with scheme ${protocols.map((p) => p.replace(':', '://')).join(' or ')}` });
    } else if (parsed.hostname === '' && !(socketParam !== undefined && parsed.searchParams.has(socketParam))) {
      ctx.addIssue({ code: 'custom', message: `names no host: ${parsed.protocol}//<host>:<port>` });
    }
  })
  // The scheme in lower case: the clients look for `rediss://` (TLS) literally, not `REDISS://`.
  .transform((value) => value.replace(/^[a-z][a-z0-9+.-]*:/i, (scheme) => scheme.toLowerCase()));

/** Whether a path names a readable file holding at least one PEM certificate. */
function isPemCertificateFile(path: string): boolean {
  try {
    return readFileSync(path, 'utf8').includes('-----BEGIN CERTIFICATE-----');
  } catch {
    return false;
  }
}

/** The shortest JANUS_ADMIN_TOKEN accepted when NODE_ENV=production (16 elsewhere). */
export const PRODUCTION_ADMIN_TOKEN_MIN = 32;

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  // One server, or a cluster (redis+cluster://h1:p1,h2:p2 or several redis:// seeds): src/redis-target.ts.
  REDIS_URL: z
    .string()
    .default('redis://127.0.0.1:6379')
    .transform((value, ctx) => {
      try {
        return { raw: value.trim().replace(/^[a-z][a-z0-9+.-]*:/i, (s) => s.toLowerCase()), target: parseRedisTarget(value) };
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
        return z.NEVER;
      }
    }),
  NATS_URL: z
    .string()
    .default('nats://127.0.0.1:4222')
    .transform((value) => value.split(',').map((s) => s.trim()).filter((s) => s.length > 0))
    .pipe(z.array(url(['nats:', 'tls:', 'ws:', 'wss:'])).min(1, 'needs at least one server URL')),
  NATS_USER: z.string().optional(),
  NATS_PASSWORD: z.string().optional(),
  DATABASE_URL: url(['postgres:', 'postgresql:'], 'host').default('postgres://postgres@127.0.0.1:5432/janus'),
  JANUS_NAMESPACE: z
    .string()
    .regex(NAMESPACE_PATTERN, 'must match ^[a-z][a-z0-9_]{0,39}$ (it names Redis keys, subjects, streams and a schema)')
    .default('janus'),
  JANUS_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  JANUS_SIGNING_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  JANUS_INGRESS_PORT: port(8080),
  JANUS_ADMIN_PORT: port(8081),
  JANUS_PERSISTER_PORT: port(8082),
  JANUS_SCHEDULER_PORT: port(8083),
  // Replicas of every JetStream stream (and so of its consumers): 3 on a NATS cluster of 3 or more
  // nodes, so that losing one node loses no message (docs/scaling.md). 1 on a single server.
  JANUS_STREAM_REPLICAS: decimalInteger(1, 5).default(1),
  // Replicas that must acknowledge every admission-state write before Janus acts on it (Redis WAIT):
  // 1 with a replica per primary, so that a failover loses no decision (docs/scaling.md). 0: none.
  JANUS_REDIS_WAIT_REPLICAS: decimalInteger(0, 5).default(0),
  // Tenant shards: each tenant's rate, concurrency and budget in one of this many Redis Cluster
  // slots besides the namespace's own (docs/scaling.md). 0: one slot. Fixed for a namespace's state.
  JANUS_REDIS_TENANT_SHARDS: decimalInteger(0, 1024).default(0),
  JANUS_HOST: z.union([z.ipv4(), z.ipv6()], { message: 'must be an IP address to listen on, e.g. 127.0.0.1 or 0.0.0.0' }).optional(),
  // Node's own variable (docs/operations.md#tls): extra CAs that every TLS connection trusts, read
  // once when the process starts. Node only prints a warning when it cannot read the file; a typo
  // would surface later as "unable to verify the first certificate", so it is checked here.
  NODE_EXTRA_CA_CERTS: z
    .string()
    .refine(isPemCertificateFile, { message: 'must name a readable PEM file of CA certificates (-----BEGIN CERTIFICATE-----)' })
    .optional(),
});

export interface Settings {
  readonly nodeEnv: 'development' | 'production' | 'test';
  /** REDIS_URL as given (scheme in lower case); `redis` says what it names. */
  readonly redisUrl: string;
  /** One server or a cluster's seed nodes (src/redis-target.ts). */
  readonly redis: RedisTarget;
  readonly natsServers: readonly string[];
  /**
   * NATS_USER and NATS_PASSWORD (CONTRACT §4 "Who may do what"); undefined when neither is set.
   * The password is not enumerable: a logged or serialized settings object never shows it.
   */
  readonly natsAuth: NatsAuth | undefined;
  readonly databaseUrl: string;
  readonly namespace: string;
  /** JANUS_REDIS_WAIT_REPLICAS: Redis replicas that must hold each admission-state write (0: none). */
  readonly redisWaitReplicas: number;
  /** JANUS_REDIS_TENANT_SHARDS: Redis Cluster slots the tenants' own limits spread over besides the namespace's (0: none). */
  readonly redisTenantShards: number;
  /** JANUS_STREAM_REPLICAS: replicas of every JetStream stream Janus creates (1 to 5). */
  readonly streamReplicas: number;
  /** Undefined when not configured; policy-admin decides whether it may start without one. */
  readonly adminToken: string | undefined;
  readonly signingKey: string;
  /** True when JANUS_SIGNING_KEY was not set (development only: production requires it). */
  readonly signingKeyGenerated: boolean;
  /** Where the signing key came from when JANUS_SIGNING_KEY was not set: the checkout's `.janus/signing-key` (dev-signing-key.ts), or undefined (generated for this process). */
  readonly signingKeyFile: string | undefined;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** The address every app listens on: 127.0.0.1 in development (nothing exposed by accident), else 0.0.0.0. */
  readonly host: string;
  readonly ports: {
    readonly ingress: number;
    readonly admin: number;
    readonly persister: number;
    readonly scheduler: number;
  };
}

export interface NatsAuth {
  readonly user: string;
  readonly password: string;
}

/** A configuration problem: names the variable and what is wrong with it. */
export class ConfigError extends Error {
  constructor(readonly issues: readonly { variable: string; message: string }[]) {
    super(`Invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${i.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/**
 * Reads the environment into a frozen, typed settings object.
 * Empty strings count as unset so that `FOO= npm start` behaves like leaving FOO out, except for
 * the variables of EMPTY_IS_AN_ERROR, whose empty value is an error naming them.
 */
export function loadSettings(env: Env = process.env): Settings {
  const cleaned: Env = {};
  const empty: { variable: string; message: string }[] = [];
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    if (value === '' && EMPTY_IS_AN_ERROR.includes(key)) empty.push({ variable: key, message: EMPTY_MESSAGE });
    else if (value !== undefined && value !== '') cleaned[key] = value;
  }
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success || empty.length > 0) {
    const invalid = parsed.success ? [] : parsed.error.issues.map((issue) => ({ variable: String(issue.path[0] ?? '?'), message: issue.message }));
    throw new ConfigError([...empty, ...invalid]);
  }
  const e = parsed.data;
  // Without a user the client sends none (it would take $USER, unset in most containers), and the
  // server's refusal would not name the variable.
  if (new URL(e.DATABASE_URL).username === '' && !env.PGUSER) {
    throw new ConfigError([{ variable: 'DATABASE_URL', message: 'names no user: postgres://<user>@<host>:<port>/<database> (or set PGUSER)' }]);
  }
  // Both or neither; the message names the missing one and never echoes the other's value.
  if ((e.NATS_USER === undefined) !== (e.NATS_PASSWORD === undefined)) {
    const [missing, set] = e.NATS_USER === undefined ? ['NATS_USER', 'NATS_PASSWORD'] : ['NATS_PASSWORD', 'NATS_USER'];
    throw new ConfigError([{ variable: missing, message: `is required when ${set} is set (set both or neither)` }]);
  }
  const production: { variable: string; message: string }[] = [];
  if (e.NODE_ENV === 'production' && e.JANUS_SIGNING_KEY === undefined) {
    production.push({ variable: 'JANUS_SIGNING_KEY', message: 'is required when NODE_ENV=production' });
  }
  // The admin token guards every policy change: in production it must be long enough to be a real
  // secret (e.g. `openssl rand -base64 32`); 16 stays the floor in development and test.
  if (e.NODE_ENV === 'production' && e.JANUS_ADMIN_TOKEN !== undefined && e.JANUS_ADMIN_TOKEN.length < PRODUCTION_ADMIN_TOKEN_MIN) {
    production.push({ variable: 'JANUS_ADMIN_TOKEN', message: `must be at least ${PRODUCTION_ADMIN_TOKEN_MIN} characters when NODE_ENV=production` });
  }
  if (production.length > 0) throw new ConfigError(production);
  const signingKeyGenerated = e.JANUS_SIGNING_KEY === undefined;
  // Development without a key: the checkout's shared one (one for every app, kept across restarts).
  const devKey = signingKeyGenerated ? devSigningKey() : undefined;
  return Object.freeze({
    nodeEnv: e.NODE_ENV,
    redisUrl: e.REDIS_URL.raw,
    redis: e.REDIS_URL.target,
    natsServers: Object.freeze([...e.NATS_URL]),
    natsAuth: e.NATS_USER !== undefined && e.NATS_PASSWORD !== undefined ? natsAuth(e.NATS_USER, e.NATS_PASSWORD) : undefined,
    databaseUrl: e.DATABASE_URL,
    namespace: e.JANUS_NAMESPACE,
    streamReplicas: e.JANUS_STREAM_REPLICAS,
    redisWaitReplicas: e.JANUS_REDIS_WAIT_REPLICAS,
    redisTenantShards: e.JANUS_REDIS_TENANT_SHARDS,
    adminToken: e.JANUS_ADMIN_TOKEN,
    signingKey: e.JANUS_SIGNING_KEY ?? devKey?.key ?? randomBytes(32).toString('base64url'),
    signingKeyGenerated,
    signingKeyFile: devKey?.file,
    logLevel: e.LOG_LEVEL,
    host: e.JANUS_HOST ?? (e.NODE_ENV === 'development' ? '127.0.0.1' : '0.0.0.0'),
    ports: Object.freeze({
      ingress: e.JANUS_INGRESS_PORT,
      admin: e.JANUS_ADMIN_PORT,
      persister: e.JANUS_PERSISTER_PORT,
      scheduler: e.JANUS_SCHEDULER_PORT,
    }),
  });
}

/** The credentials, with the password kept out of JSON, logs and `util.inspect`. */
function natsAuth(user: string, password: string): NatsAuth {
  const auth = { user } as NatsAuth;
  Object.defineProperty(auth, 'password', { value: password, enumerable: false });
  return Object.freeze(auth);
}

/**
 * For main.ts: load settings or print what is wrong and exit(1).
 * Kept separate from loadSettings so that tests can assert on the error instead of a dead process.
 */
export function loadSettingsOrExit(env: Env = process.env): Settings {
  try {
    return loadSettings(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}
