export * from './policy.js';
export * from './jobs.js';
export * from './waiting.js';
