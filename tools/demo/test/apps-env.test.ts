import { describe, expect, it } from 'vitest';
// tools/scripts holds plain Node scripts (no Nx project); apps.mjs is how `npm start` runs the apps.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { appsEnv } from '../../scripts/apps.mjs';

/**
 * CONTRACT §1: without JANUS_ADMIN_TOKEN, policy-admin refuses to start unless NODE_ENV=development
 * (then a dev token is generated). `npm start` used to hand every app a development token whatever
 * NODE_ENV said, so policy-admin came up in production with a token nobody had set.
 */
describe('npm start: the apps environment', () => {
  it('gives a development token only in development (NODE_ENV unset or development)', () => {
    for (const env of [{}, { NODE_ENV: 'development' }]) {
      const run = appsEnv(env);
      expect(run.admin?.token.length).toBeGreaterThanOrEqual(32);
      expect(run.env.JANUS_ADMIN_TOKEN).toBe(run.admin?.token);
    }
    for (const NODE_ENV of ['production', 'test']) {
      const run = appsEnv({ NODE_ENV });
      expect(run.admin).toBeUndefined();
      expect(run.env.JANUS_ADMIN_TOKEN).toBeUndefined();
    }
  });

  it('passes JANUS_ADMIN_TOKEN on whatever NODE_ENV says', () => {
    const token = 'a'.repeat(40);
    expect(appsEnv({ NODE_ENV: 'production', JANUS_ADMIN_TOKEN: token })).toMatchObject({ admin: { token, source: 'JANUS_ADMIN_TOKEN' }, env: { JANUS_ADMIN_TOKEN: token } });
  });
});
