import { describe, expect, it } from 'vitest';
import { loadSettings } from '@janus/config';
import { testEnv, testNamespace } from './namespace.js';

describe('testNamespace', () => {
  it('gives distinct namespaces that the settings accept', () => {
    const a = testNamespace('Limiter-Spec');
    const b = testNamespace('Limiter-Spec');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^t_limiter_spec_[0-9a-f]{8}$/);
    expect(loadSettings(testEnv(a)).namespace).toBe(a);
  });
});
