import type { Cluster, Redis } from 'ioredis';
import { JanusError, StoreUnavailable } from './errors.js';
import { scripts, type LuaScript } from './lua/scripts.generated.js';

type ScriptName = keyof typeof scripts;
type Arg = string | number;
type CommandFn = (...args: Arg[]) => Promise<unknown>;

/** Redis errors that mean "the store cannot serve now", not "the script is wrong". */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|READONLY|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|OOM|NOREPLICAS)\b/;

/**
 * The Lua scripts, registered on one ioredis client as `<name>:<version>` (EVALSHA with EVAL
 * fallback), and one place that turns Redis failures into faults.
 */
export class ScriptStore {
  constructor(
    readonly redis: Redis | Cluster,
    private readonly timeoutMs: number,
  ) {
    for (const script of Object.values(scripts) as LuaScript[]) {
      const command = commandName(script);
      if (!(command in redis)) {
        redis.defineCommand(command, { lua: script.lua, ...(script.numberOfKeys === undefined ? {} : { numberOfKeys: script.numberOfKeys }) });
      }
    }
  }

  /** Runs a script: `keys` are passed as KEYS (the count first for dynamic scripts). */
  run(name: ScriptName, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    const script: LuaScript = scripts[name];
    const fn = (this.redis as unknown as Record<string, CommandFn>)[commandName(script)];
    if (fn === undefined) throw new JanusError('limiter_internal', 500, false, `script ${script.name} not registered`);
    const call = script.numberOfKeys === undefined ? fn.call(this.redis, keys.length, ...keys, ...args) : fn.call(this.redis, ...keys, ...args);
    return this.guard(call);
  }

  /** Wraps any Redis promise: a timeout or connection failure becomes StoreUnavailable. */
  guard<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailable(`Redis did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
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
