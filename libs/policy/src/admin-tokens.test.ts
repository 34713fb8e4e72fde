import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN_NAME, AdminTokenCache, generateAdminToken, type AdminTokenOwner } from './admin-tokens.js';
import { hashApiKey } from './api-keys.js';

describe('admin tokens', () => {
  it('are jadm_ + 43 base64url characters, stored as their SHA-256', () => {
    const a = generateAdminToken();
    expect(a.token).toMatch(/^jadm_[A-Za-z0-9_-]{43}$/);
    expect(a.tokenHash).toBe(hashApiKey(a.token));
    expect(generateAdminToken().token).not.toBe(a.token);
  });

  it('names match ^[a-z0-9][a-z0-9_.-]{0,62}$', () => {
    for (const ok of ['a', 'alice', 'ci.deploy-bot_2', '0', `a${'b'.repeat(62)}`]) expect(ADMIN_TOKEN_NAME.test(ok), ok).toBe(true);
    for (const bad of ['', 'Alice', '-a', '.a', '_a', 'a b', 'a/b', `a${'b'.repeat(63)}`]) expect(ADMIN_TOKEN_NAME.test(bad), bad).toBe(false);
  });

  it('the cache looks tokens up by hash, and a refresh that started earlier never overwrites a later one', async () => {
    const token = generateAdminToken();
    const loads: ((m: Map<string, AdminTokenOwner>) => void)[] = [];
    const cache = new AdminTokenCache({ activeTokens: () => new Promise((resolve) => loads.push(resolve)) });
    expect(cache.loaded).toBe(false);
    const older = cache.refresh(); // started before a revocation: still sees the token
    const newer = cache.refresh(); // started after it
    loads[1]?.(new Map());
    await newer;
    loads[0]?.(new Map([[token.tokenHash, { tokenId: token.tokenId, name: 'alice' }]]));
    await older;
    expect(cache.loaded).toBe(true);
    expect(cache.lookup(token.token)).toBeUndefined();

    const again = cache.refresh();
    loads[2]?.(new Map([[token.tokenHash, { tokenId: token.tokenId, name: 'alice' }]]));
    await again;
    expect(cache.lookup(token.token)).toEqual({ tokenId: token.tokenId, name: 'alice' });
    expect(cache.lookup(token.tokenHash)).toBeUndefined(); // the hash is not the token
    expect(cache.size).toBe(1);
  });
});
