import type { Logger } from '@janus/observability';

type Step = { name: string; run: () => Promise<void> | void };

/**
 * Runs registered shutdown steps in order on SIGTERM/SIGINT (stop taking work first, close
 * connections last). A second signal, or steps taking longer than `graceMs`, force the exit.
 */
export class Shutdown {
  private readonly steps: Step[] = [];
  private running: Promise<void> | undefined;
  private installed = false;

  constructor(private readonly logger: Logger, private readonly graceMs = 15_000) {}

  add(name: string, run: Step['run']): this {
    this.steps.push({ name, run });
    return this;
  }

  /** Idempotent: Startup installs it at once, main.ts again once it has added its steps. */
  install(): void {
    if (this.installed) return;
    this.installed = true;
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.running) {
        this.logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      this.logger.info({ signal }, 'shutting down');
      void this.run().then(() => process.exit(0));
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    process.on('SIGTERM', () => {});
    process.on('SIGINT', () => {});
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      const force = setTimeout(() => {
        this.logger.error({ graceMs: this.graceMs }, 'shutdown took too long: exiting');
        process.exit(1);
      }, this.graceMs);
      force.unref();
      for (const step of this.steps) {
        try {
          await step.run();
        } catch (error) {
          this.logger.warn({ err: error, step: step.name }, 'shutdown step failed');
        }
      }
      clearTimeout(force);
      this.logger.info('stopped');
    })();
    return this.running;
  }
}
