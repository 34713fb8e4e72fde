export { FairQueue, type Blocks, type QueuedJob } from './fair-queue.js';
export { WaitingStore, type EnqueueResult, type NewWaitingJob, type RowKey, type RowState, type Units, type WaitingRow } from './store.js';
export { jobBoundOf, notBefore, paceOf, type JobBound, type Pace } from './estimate.js';
export { Dispatcher, NEW_JOB_WAKE, PRIORITIES, type DispatchDisposition, type DispatcherDeps, type DispatcherEvents } from './dispatcher.js';
export { DEFAULT_MAX_QUEUED, PRIORITY_RANK, enqueueProducerJob, type ProducerJob } from './enqueue.js';
export { replayDeadJob, type ReplayableJob, type ReplayAnswer, type ReplayDeps } from './replay.js';
export { dedupeKeyOfRoomKey, dedupeRoomKey } from '@janus/execution';
