import { z } from 'zod';

const positiveInt = (fallback: number, max: number) => z.coerce.number().int().min(1).max(max).default(fallback);

const schema = z.object({
  JANUS_PERSISTER_BATCH_SIZE: positiveInt(1_000, 5_000),
  JANUS_PERSISTER_RETENTION_DAYS: positiveInt(30, 36_500),
});

export interface PersisterTuning {
  readonly batchSize: number;
  readonly retentionDays: number;
}

/** The persister's own optional settings (documented in its README); a bad value names the variable. */
export function loadTuning(env: Record<string, string | undefined> = process.env): PersisterTuning | { error: string } {
  const cleaned = Object.fromEntries(Object.keys(schema.shape).flatMap((k) => (env[k] ? [[k, env[k]]] : [])));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    return { error: parsed.error.issues.map((i) => `  ${String(i.path[0])}: ${i.message}`).join('\n') };
  }
  return { batchSize: parsed.data.JANUS_PERSISTER_BATCH_SIZE, retentionDays: parsed.data.JANUS_PERSISTER_RETENTION_DAYS };
}
