import { describe, expect, test } from 'vitest'
import { parseKmsgRecord } from '../../src/agent/kmsg.js'

// Records as read(2) returns them from /dev/kmsg (Documentation/ABI/testing/dev-kmsg):
// "<prefix>,<seq>,<usec>,<flags>[,more];<text>\n" then " KEY=value\n" continuation lines.
// The kernel escapes bytes < 0x20, >= 0x7f and the backslash itself as \xNN.

describe('parseKmsgRecord', () => {
  test('a plain record', () => {
    expect(parseKmsgRecord('6,339,5140900,-;NET: Registered PF_INET6 protocol family\n')).toEqual({
      level: 6,
      seq: 339,
      usec: 5140900,
      text: 'NET: Registered PF_INET6 protocol family',
    })
  })

  test('continuation lines are not part of the text', () => {
    const raw = '3,1247,98765432,-;sd 0:0:0:0: [sda] Synchronize Cache failed\n SUBSYSTEM=scsi\n DEVICE=+scsi:0:0:0:0\n'
    expect(parseKmsgRecord(raw)).toEqual({ level: 3, seq: 1247, usec: 98765432, text: 'sd 0:0:0:0: [sda] Synchronize Cache failed' })
  })

  test('a record without a trailing newline', () => {
    expect(parseKmsgRecord('4,2,3,c;no newline')).toEqual({ level: 4, seq: 2, usec: 3, text: 'no newline' })
  })

  test('extra prefix fields (caller id) and a ; inside the text', () => {
    expect(parseKmsgRecord('5,10,20,-,caller=T42;a; b; c\n')).toEqual({ level: 5, seq: 10, usec: 20, text: 'a; b; c' })
  })

  test('the facility bits are masked off the level', () => {
    // prefix = facility * 8 + level: 14 = user (1) + info (6); 30 = daemon (3) + info (6); 8 = user + emerg.
    expect(parseKmsgRecord('14,1,2,-;from userspace\n')?.level).toBe(6)
    expect(parseKmsgRecord('30,1,2,-;a daemon\n')?.level).toBe(6)
    expect(parseKmsgRecord('8,1,2,-;user emerg\n')?.level).toBe(0)
    expect(parseKmsgRecord('7,1,2,-;debug\n')?.level).toBe(7)
  })

  test('\\x escapes are decoded', () => {
    expect(parseKmsgRecord('4,5,6,-;line one\\x0aline two\\x09tabbed\n')?.text).toBe('line one\nline two\ttabbed')
    expect(parseKmsgRecord('4,5,6,-;bell\\x07 and del\\x7f\n')?.text).toBe('bell\x07 and del\x7f')
  })

  test('an escaped backslash is decoded once, not again with what follows', () => {
    // The kernel writes "\" as \x5c, so the text `C:\x41` arrives as `C:\x5cx41`.
    expect(parseKmsgRecord('6,1,1,-;C:\\x5cx41\n')?.text).toBe('C:\\x41')
  })

  test('escaped UTF-8 bytes are decoded as UTF-8', () => {
    // The kernel escapes every byte >= 0x7f, so "ü 🐧" arrives as bytes: c3 bc 20 f0 9f 90 a7.
    expect(parseKmsgRecord('6,1,1,-;\\xc3\\xbc \\xf0\\x9f\\x90\\xa7\n')?.text).toBe('ü 🐧')
  })

  test('a record without ";" is not a record', () => {
    expect(parseKmsgRecord('6,339,5140900,-\n')).toBeUndefined()
    expect(parseKmsgRecord('')).toBeUndefined()
  })
})
