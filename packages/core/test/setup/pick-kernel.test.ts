import { describe, expect, test } from 'vitest'
import { pickKernelPackage } from '../../src/host/setup.js'

const DEBIAN = [
  'linux-image-6.1.0-9-amd64', 'linux-image-6.1.0-57-amd64', 'linux-image-6.1.0-57-amd64-dbg', 'linux-image-6.1.0-57-amd64-unsigned',
  'linux-image-6.1.0-57-rt-amd64', 'linux-image-6.1.0-57-cloud-amd64', 'linux-image-6.12.118+deb12-amd64', 'linux-image-6.12.107+deb12-amd64',
  'linux-image-amd64', 'linux-image-6.12.118+deb12-arm64',
]

describe('pickKernelPackage: `vmtest setup --kernel <prefix>`', () => {
  test('the newest plain package of the arch whose version starts with the prefix as a whole component', () => {
    expect(pickKernelPackage(DEBIAN, '6.1', 'amd64')).toBe('linux-image-6.1.0-57-amd64')
    expect(pickKernelPackage(DEBIAN, '6.12', 'amd64')).toBe('linux-image-6.12.118+deb12-amd64')
    expect(pickKernelPackage(DEBIAN, '6.12.107', 'amd64')).toBe('linux-image-6.12.107+deb12-amd64')
    expect(pickKernelPackage(DEBIAN, '', 'amd64')).toBe('linux-image-6.12.118+deb12-amd64') // newest
    expect(pickKernelPackage(DEBIAN, '6.12', 'arm64')).toBe('linux-image-6.12.118+deb12-arm64')
  })

  test("Ubuntu's -generic flavour counts; nothing matching gives undefined", () => {
    expect(pickKernelPackage(['linux-image-6.8.0-45-generic', 'linux-image-6.8.0-50-generic', 'linux-image-generic'], '6.8', 'amd64')).toBe('linux-image-6.8.0-50-generic')
    expect(pickKernelPackage(DEBIAN, '5.10', 'amd64')).toBeUndefined()
    expect(pickKernelPackage(DEBIAN, '6.1.0-5', 'amd64')).toBeUndefined() // 6.1.0-57 is not 6.1.0-5
  })
})
