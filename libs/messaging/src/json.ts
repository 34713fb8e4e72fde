import type { z } from 'zod';
/**
 * A message body that is JSON text already: published as is, not serialized again. The hot path
 * serializes a job's payload once and carries the text into every message that holds it.
 */
export class JsonText {
  constructor(readonly text: string) {}
}

/**
 * `JSON.stringify(value)` with the field `key` set to `raw`, which is JSON text already (for example
 * a payload serialized once). `raw` undefined leaves the field out, as JSON.stringify does with an
 * undefined value. `value` must be a plain object that does not have `key` itself.
 */
export function jsonWithRaw(value: object, key: string, raw: string | undefined): string {
  const text = JSON.stringify(value);
  if (raw === undefined) return text;
  const field = `${JSON.stringify(key)}:${raw}`;
  return text === '{}' ? `{${field}}` : `${text.slice(0, -1)},${field}}`;
}

/**
 * A received message's JSON body, checked by `schema`. A body that is not JSON at all fails like one
 * the schema refuses, so every consumer handles an unreadable message in one place (CONTRACT §6.7).
 */
export function parseMessage<T>(msg: { json(): unknown }, schema: z.ZodType<T>): z.ZodSafeParseResult<T> {
  let raw: unknown;
  try {
    raw = msg.json();
  } catch {
    raw = undefined;
  }
  return schema.safeParse(raw);
}
