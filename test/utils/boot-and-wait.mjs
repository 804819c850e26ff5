// A host process for lifecycle tests: boots a guest, prints "ready <qemu pid>", waits to be killed.
import { bootGuest } from '@vmtest/core'

const guest = await bootGuest({ kernel: process.env.VMTEST_KERNEL })
process.stdout.write(`ready ${guest.info.qemuPid}\n`)
setInterval(() => {}, 1 << 30)
