import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './io.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Every command takes these (runCli looks at them before the command runs). */
export const COMMON = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

/** What `parseArgs` gives for these options (named through it: @types/node does not export its result type). */
type Parsed<O extends Options> = {
  values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof COMMON & O; allowPositionals: true; strict: true }>>['values'];
  positionals: string[];
};

/**
 * node's own parser, strict: an unknown option, a missing value or a wrong number of positionals
 * is a UsageError (exit 2) naming it, before any request is sent.
 */
export function parse<const O extends Options>(argv: readonly string[], options: O, positionals: { names: readonly string[]; optional?: number }): Parsed<O> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    // node's messages are good ("Unknown option '--force'"); drop its advice about `--` for positionals
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const required = positionals.names.length - (positionals.optional ?? 0);
  const got = parsed.positionals;
  if (got.length < required) throw new UsageError(`missing ${positionals.names.slice(got.length, required).map((n) => `<${n}>`).join(' ')}`);
  if (got.length > positionals.names.length) throw new UsageError(`unexpected argument "${got[positionals.names.length] ?? ''}"`);
  return { values: parsed.values, positionals: got };
}

/** `--limit 20` and the like: a whole number ≥ min, or a UsageError naming the option. */
export function intOption(name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`--${name} must be a whole number ≥ ${min}, not "${value}"`);
  return Number(value);
}

/** An option that takes one of a few words. */
export function oneOf<const T extends string>(name: string, value: string, allowed: readonly T[]): T;
export function oneOf<const T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined;
export function oneOf<const T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, not "${value}"`);
  return value as T;
}

/** An ISO 8601 time with an offset (`2030-01-01T00:00:00Z`), as Janus accepts it. */
export function isoOption(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value) || Number.isNaN(Date.parse(value))) {
    throw new UsageError(`--${name} must be an ISO 8601 time with an offset (e.g. 2030-01-01T12:00:00Z), not "${value}"`);
  }
  return value;
}
