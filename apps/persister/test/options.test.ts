import { describe, expect, it } from 'vitest';
import { loadTuning } from '../src/options.js';

describe('persister tuning from the environment', () => {
  it('has defaults and accepts valid values', () => {
    expect(loadTuning({})).toEqual({ batchSize: 1_000, retentionDays: 30 });
    expect(loadTuning({ JANUS_PERSISTER_BATCH_SIZE: '250', JANUS_PERSISTER_RETENTION_DAYS: '7' })).toEqual({ batchSize: 250, retentionDays: 7 });
  });

  it('refuses an empty value and anything but decimal digits, naming the variable', () => {
    expect(loadTuning({ JANUS_PERSISTER_BATCH_SIZE: '' })).toEqual({ error: '  JANUS_PERSISTER_BATCH_SIZE: is set but empty: give it a value, or leave it out for the default' });
    for (const value of ['0x10', '1e3', '10.0', ' 10']) {
      expect(loadTuning({ JANUS_PERSISTER_RETENTION_DAYS: value })).toEqual({ error: '  JANUS_PERSISTER_RETENTION_DAYS: must be a decimal integer from 1 to 36500' });
    }
  });

  it('names the variable of a bad value', () => {
    const bad = loadTuning({ JANUS_PERSISTER_BATCH_SIZE: '0', JANUS_PERSISTER_RETENTION_DAYS: 'soon' });
    expect('error' in bad && bad.error).toMatch(/JANUS_PERSISTER_BATCH_SIZE: .*\n.*JANUS_PERSISTER_RETENTION_DAYS: /);
  });
});
