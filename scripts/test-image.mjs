#!/usr/bin/env node
// The disk image the image-target tests boot: built by build-test-image.sh
// (as root) into the vmtest cache, keyed by the script's hash, so a machine
// builds it once per change of the script. Run: node scripts/test-image.mjs
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const script = fileURLToPath(new URL('./build-test-image.sh', import.meta.url))

export function testImagePath() {
  const cache = process.env.VMTEST_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vmtest')
  const hash = createHash('sha256').update(readFileSync(script)).digest('hex').slice(0, 12)
  return join(cache, 'test-images', `debian-amd64-${hash}.raw`)
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const image = testImagePath()
  if (existsSync(image)) {
    console.log(`test image: ${image}`)
  } else if (process.getuid?.() !== 0) {
    console.error(`test image: ${image} is missing; building it needs root: sudo ${script} ${image}`)
    process.exitCode = 1
  } else {
    mkdirSync(dirname(image), { recursive: true })
    // Images of older versions of the script are of no use any more.
    for (const old of readdirSync(dirname(image))) if (old.endsWith('.raw')) rmSync(join(dirname(image), old), { force: true })
    execFileSync(script, [image], { stdio: 'inherit' })
    console.log(`test image: ${image}`)
  }
}
