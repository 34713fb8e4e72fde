export * from './policy.js';
export * from './jobs.js';
