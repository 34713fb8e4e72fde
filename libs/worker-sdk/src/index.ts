export { LeaseRefused, Permanent, Throttled, UnknownJobType, retryAfterMs, startWorker, type JobContext, type JobHandler, type Worker, type WorkerLogger, type WorkerOptions } from './worker.js';
