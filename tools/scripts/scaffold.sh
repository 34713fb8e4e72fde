#!/usr/bin/env bash
# Scaffolds a workspace project: tools/scripts/scaffold.sh <libs|apps|tools> <name> [deps...]
set -euo pipefail
kind=$1; name=$2; shift 2
dir="$kind/$name"; mkdir -p "$dir/src"
tag=lib; [ "$kind" = apps ] && tag=app; [ "$kind" = tools ] && tag=tool
deps=""; for d in "$@"; do deps="$deps\"@janus/$d\": \"*\","; done; deps="${deps%,}"
serve=""
if [ "$kind" = apps ]; then
  serve=', "targets": { "serve": { "executor": "nx:run-commands", "continuous": true, "options": { "command": "tsx src/main.ts", "cwd": "'"$dir"'" } } }'
fi
cat > "$dir/package.json" <<JSON
{
  "name": "@janus/$name",
  "version": "0.0.0",
  "private": true,
  "type": "module",
  "exports": { ".": "./src/index.ts" },
  "types": "./src/index.ts",
  "dependencies": { $deps },
  "nx": { "tags": ["type:$tag"]$serve }
}
JSON
cat > "$dir/tsconfig.json" <<JSON
{
  "extends": "../../tsconfig.base.json",
  "compilerOptions": { "rootDir": ".", "outDir": "out-tsc", "tsBuildInfoFile": "out-tsc/tsconfig.tsbuildinfo" },
  "include": ["src/**/*.ts", "test/**/*.ts", "vitest.config.ts"],
  "references": []
}
JSON
cat > "$dir/vitest.config.ts" <<TS
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: '$name',
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', ['json', { outputFile: '../../test-output/vitest/$name.json' }]],
  },
});
TS
