export { natsNames, type NatsNames } from './names.js';
/** Message ids are part of the contract; built there, offered here next to the names. */
export { messageIds, outcomeReportId } from '@janus/contracts';
export { consumeConcurrently, consumerGone, type ConsumeLoop, type ConsumeOptions } from './consume.js';
export { connectNats, isNatsUp, natsAuthOptions, natsTlsOptions, pingNats, type NatsConnection } from './connection.js';
export { NATS_APP_USER, NATS_PASSWORD_VARIABLES, NATS_WORKER_USER, WORKER_INBOX_PREFIX, natsAuthConfig, natsAuthPermissions, type SubjectPermissions, type UserPermissions } from './nats-auth.js';
export { OUTCOME_DUPLICATE_WINDOW_MS, ensureConsumer, ensureServiceConsumer, ensureStreams, ensureWorkerConsumer, streamConfigs, streamsReady, sweepWorkerConsumers, type StreamOptions, type WorkerConsumerSweep } from './streams.js';
export { publishAll, publishFailure, publishJson, type JetStreamTarget, type PublishResult } from './publish.js';
export { JsonText, jsonWithRaw, parseMessage } from './json.js';
export { AckPublisher, PublishRejected, PublishTimeout } from './ack-publisher.js';
export { jetStreamTimeMs, storedAt, storedJobReader, type StoredJob } from './stored-time.js';
