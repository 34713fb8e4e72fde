export { LeaseRefused, Permanent, Throttled, retryAfterMs, startWorker, type JobContext, type JobHandler, type Worker, type WorkerOptions } from './worker.js';
