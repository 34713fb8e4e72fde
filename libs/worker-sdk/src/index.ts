export { LeaseRefused, Permanent, Throttled, UnknownJobType, retryAfterMs, startWorker, type JobContext, type JobHandler, type Worker, type WorkerLogger, type WorkerOptions } from './worker.js';
export { WORKER_INBOX_PREFIX, WorkerConfigError, connectWorker, type ConnectWorkerOptions } from './connect.js';
export type { JobMessage } from '@janus/contracts';
