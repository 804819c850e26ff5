#!/usr/bin/env node
// `npm run setup`: install QEMU and busybox (apt, as root) and fetch the default guest kernel.
import { setupHost } from '@vmtest/core/setup'

const problems = await setupHost()
process.exitCode = problems.length > 0 ? 1 : 0
