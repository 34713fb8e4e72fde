export { LeaseRefused, Permanent, Throttled, UnknownJobType, retryAfterMs, startWorker, type JobContext, type JobHandler, type Worker, type WorkerLogger, type WorkerOptions } from './worker.js';
export type { JobMessage } from '@janus/contracts';
