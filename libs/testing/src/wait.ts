/**
 * Polls `probe` until it returns a value (anything but `undefined` or `false`) and resolves with it;
 * rejects after `timeoutMs`. For tests that wait on eventually consistent state (a persisted row,
 * a consumer that appears, a policy that propagates).
 */
export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, stepMs = 25): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
