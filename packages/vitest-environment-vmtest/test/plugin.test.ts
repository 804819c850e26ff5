import { describe, expect, test } from 'vitest'
import vmtest from '../src/plugin.js'

type ConfigHook = (config: Record<string, unknown>) => { test: Record<string, unknown> }

describe('the plugin', () => {
  const config = vmtest().config as unknown as ConfigHook

  test('sets the environment only when the user did not', () => {
    expect(config({}).test.environment).toBe('vmtest')
    expect(config({ test: {} }).test.environment).toBe('vmtest')
    expect(config({ test: { environment: 'node' } }).test).not.toHaveProperty('environment')
  })

  test('adds its setup file and global setup as absolute paths', () => {
    const { setupFiles, globalSetup } = config({}).test as { setupFiles: string[]; globalSetup: string[] }
    expect(setupFiles).toEqual([expect.stringMatching(/^\/.*\/setup-file\.js$/)])
    expect(globalSetup).toEqual([expect.stringMatching(/^\/.*\/global-setup\.js$/)])
  })
})
