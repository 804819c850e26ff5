import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { makePrivateDir } from '../../src/host/broker/location.js'

const root = mkdtempSync(join(tmpdir(), 'vmtest-location-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

describe("makePrivateDir: the broker's dir, whose socket runs commands as root in the guests", () => {
  test('made 0700, whatever the umask', () => {
    const old = process.umask(0)
    try {
      makePrivateDir(join(root, 'new'))
    } finally {
      process.umask(old)
    }
    expect(lstatSync(join(root, 'new')).mode & 0o777).toBe(0o700)
  })

  test('an existing private dir of ours is taken as is (the run\'s other workers)', () => {
    makePrivateDir(join(root, 'again'))
    expect(() => makePrivateDir(join(root, 'again'))).not.toThrow()
  })

  test('an existing dir others can enter, or a symlink planted in its place, is refused', () => {
    mkdirSync(join(root, 'open'))
    chmodSync(join(root, 'open'), 0o755)
    expect(() => makePrivateDir(join(root, 'open'))).toThrow(`${join(root, 'open')} exists but is not a private directory of this user: remove it`)
    mkdirSync(join(root, 'target'), { mode: 0o700 })
    symlinkSync(join(root, 'target'), join(root, 'planted'))
    expect(() => makePrivateDir(join(root, 'planted'))).toThrow('is not a private directory of this user')
  })
})
