import { describe, expect, test } from 'vitest'
import { kernelLogNote, kernelVerdict, type KernelWindow } from '../../src/runner/kernel-report.js'

const WARN = [
  '------------[ cut here ]------------',
  'vmtest_demo: asked to warn',
  'WARNING: CPU: 0 PID: 134 at drivers/demo.c:32 demo_init+0x2c/0x1000 [demo]',
  'Modules linked in: demo(OE+)',
  '---[ end trace 0000000000000000 ]---',
]
const window = (w: Partial<KernelWindow>): KernelWindow => ({ lines: [], release: '6.1.0-test', failOn: true, allowed: [], ...w })

describe('kernelVerdict', () => {
  test('a clean window passes', () => {
    expect(kernelVerdict(window({ lines: ['ordinary line'], taintBefore: 0, taintAfter: 0 }))).toBeUndefined()
  })

  test('a splat fails with its report and how to allow it', () => {
    const error = kernelVerdict(window({ lines: ['before', ...WARN] }))!
    expect(error.code).toBe('VMTEST_KERNEL_SPLAT')
    expect(error.message).toBe(
      'The guest kernel (6.1.0-test) reported a problem while this test ran:\n' +
        'warning: WARNING: CPU: 0 PID: 134 at drivers/demo.c:32 demo_init+0x2c/0x1000 [demo]\n' +
        WARN.slice(2).map((l) => `  | ${l}`).join('\n') +
        '\nIf the test expects it, accept it with guest.allowKernelLog(/pattern/).',
    )
    expect(error.stack).toBe(`VmtestError: ${error.message}`)
  })

  test('an allowed splat passes, matched on its report or the WARN message just before it', () => {
    expect(kernelVerdict(window({ lines: WARN, allowed: [/demo_init/] }))).toBeUndefined()
    expect(kernelVerdict(window({ lines: WARN, allowed: [/asked to warn/] }))).toBeUndefined()
    expect(kernelVerdict(window({ lines: ['asked to warn', 'x', 'y', ...WARN.slice(2)], allowed: [/asked to warn/] }))).toBeDefined()
  })

  test('failOnKernel picks the kinds that fail', () => {
    expect(kernelVerdict(window({ lines: WARN, failOn: false }))).toBeUndefined()
    expect(kernelVerdict(window({ lines: WARN, failOn: ['oops', 'panic'] }))).toBeUndefined()
    expect(kernelVerdict(window({ lines: WARN, failOn: ['warning'] }))?.code).toBe('VMTEST_KERNEL_SPLAT')
  })

  test('a new defect taint with no report fails; O and E (module loading) do not', () => {
    const tainted = kernelVerdict(window({ lines: ['line'], taintBefore: 0, taintAfter: 512 }))!
    expect(tainted.code).toBe('VMTEST_KERNEL_TAINTED')
    expect(tainted.message).toBe('The guest kernel (6.1.0-test) became tainted (W) while this test ran, with no report in its log.\nKernel log while it ran:\n  | line')
    expect(kernelVerdict(window({ taintBefore: 0, taintAfter: 4096 + 8192 }))).toBeUndefined()
    expect(kernelVerdict(window({ taintBefore: 512, taintAfter: 512 }))).toBeUndefined()
  })
})

describe('kernelLogNote', () => {
  test('quotes the window of a test that failed anyway, or nothing', () => {
    expect(kernelLogNote([])).toBeUndefined()
    expect(kernelLogNote(['a', 'b'])!.message).toBe('Kernel log while this test ran:\n  | a\n  | b')
  })
})
