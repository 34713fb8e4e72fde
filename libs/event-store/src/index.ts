export { decodeMessage, ledgerEntryId, rejectionOf, STREAM_KINDS, type PersistEvent, type RawMessage, type RejectedEvent, type StreamKind } from './decode.js';
export { describeDbError, isPermanentDbError } from './errors.js';
export { JOB_PAGE, decodeJobCursor, encodeJobCursor, parseJobStatuses } from './cursor.js';
export { getJobRecord, getJobView, listJobRecords, listJobViews, listJobsStatement, type JobCursor, type JobListQuery, type JobPage, type JobRecord } from './job-view.js';
export { createPersisterMetrics, type PersisterMetrics } from './metrics.js';
export { Persister, type PersisterOptions } from './persister.js';
export { pruneHistory, schedulePruning, type PruneResult, type RetentionPolicy } from './prune.js';
export { outcomeEventId, reconcileJobStatus, storeBatch, type StoreResult } from './store.js';
export { countRows, type RowCounts } from './counts.js';
