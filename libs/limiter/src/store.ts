import type { Cluster, Redis } from 'ioredis';
import { JanusError, NotReplicated, StoreUnavailable } from './errors.js';
import { scripts, type LuaScript } from './lua/scripts.generated.js';

type ScriptName = keyof typeof scripts;
type Arg = string | number;
type CommandFn = (...args: Arg[]) => Promise<unknown>;

/**
 * Scripts that never wait for replicas: those that only read, and revoke, which only gives back
 * what an admission that never reached JetStream took — lost in a failover, it leaves that held
 * until the leases expire, which is conservative (and it must run while replicas are missing).
 */
const NO_WAIT: ReadonlySet<ScriptName> = new Set<ScriptName>(['count', 'depState', 'expired', 'time', 'revoke']);

/** Redis errors that mean "the store cannot serve now", not "the script is wrong". */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|READONLY|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|OOM|NOREPLICAS)\b/;

/** After a write no replica acknowledged, writes fail at once for this long (then one tries again). */
const REPLICAS_MISSING_MS = 1_000;

/** The guard's timeout: the call may still run (and answer) later. */
class TimedOut extends StoreUnavailable {}

export interface ReplicaAcks {
  /**
   * Replicas that must hold a script's writes before its answer counts (JANUS_REDIS_WAIT_REPLICAS;
   * 0: none, the default). With 1 and one replica per primary, a failover never loses a decision
   * that was acted on: a write not acknowledged in time is a fault (the caller answers 503 and
   * never publishes), and what the primary did keep is released when its leases expire.
   */
  readonly replicas: number;
  /** How long to wait for them (WAIT's timeout). */
  readonly timeoutMs: number;
}

/**
 * The Lua scripts, registered on one ioredis client as `<name>:<version>` (EVALSHA with EVAL
 * fallback), and one place that turns Redis failures into faults.
 */
export class ScriptStore {
  #replicasMissingUntil = 0;

  constructor(
    readonly redis: Redis | Cluster,
    private readonly timeoutMs: number,
    private readonly replicaAcks: ReplicaAcks = { replicas: 0, timeoutMs: 0 },
  ) {
    for (const script of Object.values(scripts) as LuaScript[]) {
      const command = commandName(script);
      if (!(command in redis)) {
        redis.defineCommand(command, { lua: script.lua, ...(script.numberOfKeys === undefined ? {} : { numberOfKeys: script.numberOfKeys }) });
      }
    }
  }

  /**
   * Runs a script: `keys` are passed as KEYS (the count first for dynamic scripts). `onAbandoned`:
   * called with the script's reply when it answered only after the call had already failed (the
   * timeout, or replicas that did not acknowledge it): its effect happened although the caller
   * was told otherwise, and the caller may undo it.
   */
  run(name: ScriptName, keys: readonly string[], args: readonly Arg[], opts: { readonly onAbandoned?: (reply: unknown) => Promise<void> | void } = {}): Promise<unknown> {
    const script: LuaScript = scripts[name];
    const fn = (this.redis as unknown as Record<string, CommandFn>)[commandName(script)];
    if (fn === undefined) throw new JanusError('limiter_internal', 500, false, `script ${script.name} not registered`);
    const replicated = this.replicaAcks.replicas > 0 && !NO_WAIT.has(name) && keys[0] !== undefined;
    if (replicated && Date.now() < this.#replicasMissingUntil) {
      // A write just failed to reach a replica: fail at once for a moment rather than run writes
      // that cannot count and stall the node's connection in WAIT one after another.
      return Promise.reject(new NotReplicated(`Redis: fewer than ${this.replicaAcks.replicas} replicas acknowledged a write in the last ${REPLICAS_MISSING_MS} ms`, undefined));
    }
    const argv = script.numberOfKeys === undefined ? [keys.length, ...keys, ...args] : [...keys, ...args];
    const call = fn.apply(this.redis, argv);
    const work = replicated ? call.then(async (reply) => (await this.#replicated(keys[0]!, reply), reply)) : call;
    const onAbandoned = opts.onAbandoned;
    if (onAbandoned === undefined) return this.guard(work);
    return this.guard(work).catch(async (error: unknown) => {
      // Undone before the caller hears of the failure when the reply is at hand; after the
      // timeout, whenever the late reply comes.
      if (error instanceof NotReplicated) {
        if (error.reply !== undefined) await Promise.resolve(onAbandoned(error.reply)).catch(() => undefined);
      }
      else if (error instanceof TimedOut) {
        work.then(onAbandoned, (late: unknown) => (late instanceof NotReplicated ? onAbandoned(late.reply) : undefined)).catch(() => undefined);
      }
      throw error;
    });
  }

  /**
   * WAIT after a script has answered, on the connection of the node that ran it (a cluster routes
   * the pipeline by its EXISTS of a key of the script's slot): it answers once enough replicas have
   * everything that connection wrote, the script included — also when ioredis had to resend the
   * script as EVAL after a NOSCRIPT (a freshly promoted replica has no scripts loaded), which WAIT
   * pipelined with the EVALSHA would not cover.
   */
  async #replicated(routeKey: string, reply: unknown): Promise<void> {
    const missing = (why: string): NotReplicated => {
      this.#replicasMissingUntil = Date.now() + REPLICAS_MISSING_MS;
      return new NotReplicated(`Redis: ${why}`, reply);
    };
    // Another write just missed: no WAIT (it would block this connection for everyone behind it).
    if (Date.now() < this.#replicasMissingUntil) throw new NotReplicated(`Redis: fewer than ${this.replicaAcks.replicas} replicas acknowledged a write in the last ${REPLICAS_MISSING_MS} ms`, reply);
    let rows: [Error | null, unknown][];
    try {
      rows = (await this.redis.pipeline().exists(routeKey).wait(this.replicaAcks.replicas, this.replicaAcks.timeoutMs).exec()) ?? [];
    } catch (error) {
      throw missing(`WAIT failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    // EXISTS redirected (MOVED/ASK: the slot moved meanwhile) means WAIT ran on another node: its
    // count says nothing about the script's write.
    const [routeError] = rows[0] ?? [new Error('no reply to EXISTS')];
    if (routeError) throw missing(`WAIT not on the script's node (${routeError.message})`);
    const [error, acked] = rows[1] ?? [new Error('no reply to WAIT'), undefined];
    if (error) throw missing(`WAIT failed: ${error.message}`);
    if (Number(acked) < this.replicaAcks.replicas) {
      throw missing(`${Number(acked)} of ${this.replicaAcks.replicas} replicas acknowledged within ${this.replicaAcks.timeoutMs} ms`);
    }
  }

  /** Wraps any Redis promise: a timeout or connection failure becomes StoreUnavailable. */
  guard<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimedOut(`Redis did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    return Promise.race([promise, timeout])
      .catch((error: unknown) => {
        throw toFault(error);
      })
      .finally(() => clearTimeout(timer));
  }
}

function commandName(script: LuaScript): string {
  return `janus_${script.name}:${script.version}`;
}

function toFault(error: unknown): Error {
  if (error instanceof JanusError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const isReply = error instanceof Error && error.name === 'ReplyError';
  if (isReply && !UNAVAILABLE_REPLY.test(message)) {
    return new JanusError('limiter_script_error', 500, false, `limiter script failed: ${message}`, { cause: new Error(message) });
  }
  // The ioredis error carries the whole command (script text and payload): keep only its message.
  return new StoreUnavailable(`Redis unavailable: ${message}`, { cause: new Error(message) });
}
