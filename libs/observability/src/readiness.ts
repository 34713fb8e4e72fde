/** A named dependency check: resolves true when the dependency is usable right now. */
export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<boolean> | boolean;
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: Record<string, 'up' | 'down'>;
  /** Names of the checks that are down, e.g. ["redis"]. */
  readonly down: readonly string[];
}

const CHECK_TIMEOUT_MS = 1_000;

async function runCheck(check: ReadinessCheck): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), CHECK_TIMEOUT_MS);
    });
    return await Promise.race([Promise.resolve(check.check()), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every check in parallel; a check that throws or takes over a second counts as down. */
export async function checkReadiness(checks: readonly ReadinessCheck[]): Promise<ReadinessReport> {
  const results = await Promise.all(checks.map(async (c) => [c.name, await runCheck(c)] as const));
  const down = results.filter(([, ok]) => !ok).map(([name]) => name);
  return {
    ready: down.length === 0,
    checks: Object.fromEntries(results.map(([name, ok]) => [name, ok ? 'up' : 'down'])),
    down,
  };
}
