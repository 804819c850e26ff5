#!/usr/bin/env node
// Bundles the guest agent (compiled by tsc into packages/core/dist) into one
// CommonJS file: node in the guest starts it ≈1 s sooner under emulation than
// it loads the same code as separate ES modules.
import { build } from 'esbuild'

await build({
  entryPoints: ['packages/core/dist/agent/main.js'],
  outfile: 'packages/core/dist/agent.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node18',
  logLevel: 'warning',
})
