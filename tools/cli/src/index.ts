export { EXIT_CODES, USAGE, runCli } from './cli.js';
export { EXIT, type CliIo, type ExitCode } from './io.js';
export { loadPolicyFile, policyWarnings, renderDiff } from './commands/policy.js';
export type { ConsumerReport, StreamReport } from './commands/streams.js';
