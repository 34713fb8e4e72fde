export { LeaseRefused, Permanent, startWorker, type JobContext, type JobHandler, type Worker, type WorkerOptions } from './worker.js';
