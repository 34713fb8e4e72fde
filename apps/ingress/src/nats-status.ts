import type { NatsConnection } from '@janus/messaging';

/**
 * Whether the NATS connection is up right now, from the client's status events: lets admission
 * answer 503 at once while NATS is down instead of admitting, waiting for a publish timeout and
 * revoking.
 */
export class NatsStatus {
  #up = true;
  #stopped = false;

  constructor(private readonly nc: NatsConnection) {
    void this.watch();
  }

  get up(): boolean {
    return this.#up && !this.nc.isClosed() && !this.nc.isDraining();
  }

  stop(): void {
    this.#stopped = true;
  }

  private async watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (this.#stopped) return;
      if (status.type === 'disconnect' || status.type === 'staleConnection') this.#up = false;
      else if (status.type === 'reconnect') this.#up = true;
    }
  }
}
