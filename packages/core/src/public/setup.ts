// `@vmtest/core/setup`: the host set-up, for `npm run setup` and `vmtest setup`.
export { setupHost, extraKernels, type SetupOptions } from '../host/setup.js'
