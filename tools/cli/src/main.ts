// The `janus` executable. No hashbang here: the package build adds `#!/usr/bin/env node` to the
// bundle (tools/scripts/build-packages.mjs); in the repository it runs with tsx (`npm run janus --`).
import { runCli } from './cli.js';

// `janus jobs list | head`: the reader is gone, which is no error of ours (and no stack trace).
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
});
