#!/usr/bin/env node
// `npm run setup [-- --kernel <package>...] [--arch <arch>...]`: install QEMU
// and busybox (apt, as root), fetch the default guest kernel, any other kernels
// named, and the kernel and root filesystem of each foreign architecture named.
import { parseArgs } from 'node:util'
import { setupHost } from '@vmtest/core/setup'

const { values } = parseArgs({ options: { kernel: { type: 'string', multiple: true, default: [] }, arch: { type: 'string', multiple: true, default: [] } } })
const problems = await setupHost({ kernels: values.kernel, arches: values.arch })
process.exitCode = problems.length > 0 ? 1 : 0
