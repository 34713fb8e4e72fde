import { randomFillSync } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

// Random bytes drawn 4 KiB at a time: one randomBytes(10) per job cost ~9 µs (a native call and a
// buffer each), a slice of a pre-filled pool costs nothing. Same CSPRNG, each byte used once.
const pool = Buffer.alloc(4096);
let poolAt = pool.length;
function random10(): Buffer {
  if (poolAt + 10 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  poolAt += 10;
  return pool.subarray(poolAt - 10, poolAt);
}

// The 10 time characters, kept for the last millisecond asked (many ids share one at full load).
let lastMs = Number.NaN;
let lastTime = '';
function timePart(ms: number): string {
  if (ms !== lastMs) {
    let time = '';
    let t = ms;
    for (let i = 0; i < 10; i++) {
      time = CROCKFORD[t % 32] + time;
      t = Math.floor(t / 32);
    }
    lastMs = ms;
    lastTime = time;
  }
  return lastTime;
}

/**
 * A ULID-shaped job id (26 Crockford base32 characters: 48 bits of ms time, 80 random bits): unique
 * across instances without coordination, and sortable by creation time as text.
 */
export function newJobId(now = Date.now()): string {
  const time = timePart(now);
  const bytes = random10();
  let random = '';
  // 80 bits → 16 characters of 5 bits.
  let acc = 0;
  let bits = 0;
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      random += CROCKFORD[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  return time + random;
}

const JOB_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/**
 * True for text shaped like an id `newJobId` issues (26 characters of Crockford base32, upper
 * case). Anything else names no job: it is answered 404 without asking PostgreSQL (which refuses
 * some text outright, e.g. NUL).
 */
export function isJobId(text: string): boolean {
  return JOB_ID.test(text);
}
