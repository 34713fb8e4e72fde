import { randomBytes } from 'node:crypto';
import { ConfigError, type Settings } from '@janus/config';

/**
 * The admin token policy-admin runs with (CONTRACT §1): `JANUS_ADMIN_TOKEN`, or, only when
 * NODE_ENV=development (the default, which `npm start` uses), a fresh one generated for this
 * process. Anything else without a token refuses to start. Its length (≥ 32 characters in
 * production) is checked by the settings. The audit log names it `token:env`; named tokens
 * (`/v1/admin/tokens`) come on top of it.
 */
export function resolveAdminToken(settings: Pick<Settings, 'adminToken' | 'nodeEnv'>): { token: string; generated: boolean } {
  if (settings.adminToken !== undefined) return { token: settings.adminToken, generated: false };
  if (settings.nodeEnv === 'development') return { token: `dev_${randomBytes(24).toString('base64url')}`, generated: true };
  throw new ConfigError([
    { variable: 'JANUS_ADMIN_TOKEN', message: `is required (policy-admin generates one only when NODE_ENV=development; NODE_ENV is ${settings.nodeEnv})` },
  ]);
}
