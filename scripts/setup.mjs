#!/usr/bin/env node
// `npm run setup [-- --kernel <package>...]`: install QEMU and busybox (apt, as
// root), fetch the default guest kernel and any other kernels named.
import { parseArgs } from 'node:util'
import { setupHost } from '@vmtest/core/setup'

const { values } = parseArgs({ options: { kernel: { type: 'string', multiple: true, default: [] } } })
const problems = await setupHost({ kernels: values.kernel })
process.exitCode = problems.length > 0 ? 1 : 0
