-- A waiting job's payload dedupe key is kept in idempotency_key behind a prefix no producer key can
-- start with. Producer keys may now hold any printable character (CONTRACT §3), '§' included, so
-- the prefix becomes a control character (U+0001), which a key cannot contain
-- (libs/execution/src/room-keys.ts).
UPDATE "waiting_jobs" SET "idempotency_key" = E'\x01dedupe:' || substr("idempotency_key", 9) WHERE "idempotency_key" LIKE E'\u00a7dedupe:%';
