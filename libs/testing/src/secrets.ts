/**
 * What a secret looks like, for the scan of every log line a test run writes (CONTRACT §6 and the
 * least-privilege issue: API keys, lease tokens, admin tokens and passwords never appear in logs,
 * problem bodies or metric labels). Shapes come from where each secret is made:
 * - API keys: `jns_<12 hex>_<32 base64url>` (libs/policy api-keys.ts);
 * - lease tokens: `<lease id>.<43 base64url>`, a SHA-256 MAC (libs/limiter token.ts) — the lease id
 *   alone is not secret;
 * - named admin tokens: `jadm_<43 base64url>` (libs/policy admin-tokens.ts);
 * - a bearer credential in a header dump, a password in a URL (`scheme://user:pass@`).
 * Plus the literal values the tests configure (TEST_SECRETS).
 */
export const SECRET_PATTERNS: readonly { readonly kind: string; readonly pattern: RegExp }[] = [
  { kind: 'api key', pattern: /jns_[0-9a-f]{12}_[A-Za-z0-9_-]{32}/ },
  { kind: 'admin token', pattern: /jadm_[A-Za-z0-9_-]{43}/ },
  { kind: 'lease token', pattern: /[A-Za-z0-9_-]+_\d+\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/ },
  { kind: 'bearer credential', pattern: /bearer\s+[A-Za-z0-9._~+/=-]{8,}/i },
  { kind: 'password in a URL', pattern: /[a-z][a-z0-9+.-]*:\/\/[^\s:@/"]+:[^\s@/"]+@/i },
];

/** The fixed secrets `testEnv` (and the NATS auth tests) configure: none may ever be written. */
export const TEST_SECRETS = Object.freeze({
  signingKey: 'test-signing-key-0123456789abcdef0123456789',
  adminToken: 'test-admin-token-0123456789',
  /** The NATS users' passwords of the tests that run a nats-server with infra/nats-auth.conf's users (letters and digits: nats-server reads them as configuration values). */
  natsPassword: 'TestNatsPassw0rdOfUserJanus',
  natsWorkerPassword: 'TestNatsPassw0rdOfUserWorker',
});

export interface SecretFinding {
  readonly kind: string;
  /** The matched text with its middle masked, so that the report itself leaks nothing whole. */
  readonly masked: string;
}

function mask(text: string): string {
  return text.length <= 8 ? '***' : `${text.slice(0, 4)}…${text.slice(-2)}`;
}

/** The secrets one line contains: shapes, then the literal values given. */
export function findSecrets(line: string, literals: readonly string[] = Object.values(TEST_SECRETS)): SecretFinding[] {
  const found: SecretFinding[] = [];
  for (const { kind, pattern } of SECRET_PATTERNS) {
    const match = pattern.exec(line);
    if (match) found.push({ kind, masked: mask(match[0]) });
  }
  for (const literal of literals) {
    if (literal.length > 0 && line.includes(literal)) found.push({ kind: 'configured secret', masked: mask(literal) });
  }
  return found;
}
