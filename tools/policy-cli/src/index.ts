export { loadPolicyFile, parseArgs, renderDiff, runCli, USAGE, type CliIo } from './cli.js';
