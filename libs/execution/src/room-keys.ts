/**
 * A job type with `dedupe: { by: "payload" }` (CONTRACT §2): its jobs that wait in the room are
 * found by their payload dedupe key (@janus/contracts payloadDedupeKey), kept in the row's
 * `idempotency_key` column behind a prefix that no producer's `Idempotency-Key` can start with (a
 * control character: a key holds printable characters only), so that the two kinds of key never
 * meet. (Rows written with the earlier prefix, `§dedupe:`, were rewritten by migration 0015.)
 */
const DEDUPE_ROOM_PREFIX = '\u0001dedupe:';

/** The room's spelling of a payload dedupe key. */
export function dedupeRoomKey(key: string): string {
  return DEDUPE_ROOM_PREFIX + key;
}

/** The payload dedupe key a row's `idempotency_key` holds, or undefined for a producer's key. */
export function dedupeKeyOfRoomKey(roomKey: string): string | undefined {
  return roomKey.startsWith(DEDUPE_ROOM_PREFIX) ? roomKey.slice(DEDUPE_ROOM_PREFIX.length) : undefined;
}
