import { z } from 'zod';
import { isStorableText } from './payload.js';

/** Names of dependencies, tenants and job types: they appear in NATS subjects and Redis keys. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const Name = z.string().regex(NAME_PATTERN, 'must match ^[a-z0-9][a-z0-9_-]{0,63}$');
export type Name = z.infer<typeof Name>;

export const Priority = z.enum(['high', 'normal', 'low']);
export type Priority = z.infer<typeof Priority>;

/**
 * Idempotency keys: 1–200 printable characters (CONTRACT §3), counted as Unicode code points: no
 * control character (C0, DEL, C1: NUL included), no unpaired surrogate, no line or paragraph
 * separator. (An `Idempotency-Key` header travels as bytes that Node reads as Latin-1: outside
 * ASCII, the body field `idempotencyKey` is the portable way.)
 */
export const IdempotencyKey = z
  .string()
  .min(1)
  .regex(/^[^\p{Cc}\p{Cs}\p{Zl}\p{Zp}]+$/u, 'must be printable characters (no control characters)')
  .refine((s) => [...s].length <= 200, 'must be at most 200 characters');

export const STORABLE_TEXT_RULE = 'must not contain U+0000 (NUL) or a lone UTF-16 surrogate';

/** Free text that is stored (an API key's label …): a string PostgreSQL can store (isStorableText), else a 4xx naming the field. */
export const StorableText = z.string().refine(isStorableText, STORABLE_TEXT_RULE);
