// `@vmtest/core/setup`: the host set-up, for `npm run setup` and `vmtest setup`.
export { setupHost, type SetupOptions } from '../host/setup.js'
