import { z } from 'zod';
import { decimalInteger, EMPTY_MESSAGE } from '@janus/config';

const schema = z.object({
  JANUS_PERSISTER_BATCH_SIZE: decimalInteger(1, 5_000).default(1_000),
  JANUS_PERSISTER_RETENTION_DAYS: decimalInteger(1, 36_500).default(30),
});

export interface PersisterTuning {
  readonly batchSize: number;
  readonly retentionDays: number;
}

/**
 * The persister's own optional settings (documented in its README); a bad value names the variable.
 * Numbers, as in @janus/config: decimal digits only, and an empty value is an error, not the default.
 */
export function loadTuning(env: Record<string, string | undefined> = process.env): PersisterTuning | { error: string } {
  const keys = Object.keys(schema.shape);
  const empty = keys.filter((k) => env[k] === '').map((k) => `  ${k}: ${EMPTY_MESSAGE}`);
  const parsed = schema.safeParse(Object.fromEntries(keys.flatMap((k) => (env[k] ? [[k, env[k]]] : []))));
  if (!parsed.success || empty.length > 0) {
    const invalid = parsed.success ? [] : parsed.error.issues.map((i) => `  ${String(i.path[0])}: ${i.message}`);
    return { error: [...empty, ...invalid].join('\n') };
  }
  return { batchSize: parsed.data.JANUS_PERSISTER_BATCH_SIZE, retentionDays: parsed.data.JANUS_PERSISTER_RETENTION_DAYS };
}
