export * from './names.js';
export * from './policy.js';
export * from './http.js';
export * from './messages.js';
export * from './field-errors.js';
export * from './message-ids.js';
export * from './payload.js';
export * from './dedupe.js';
