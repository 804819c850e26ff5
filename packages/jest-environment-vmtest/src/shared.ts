// The one thing the environment and a test's copy of this package share: a
// key on the test file's global. Jest evaluates a test's `require` of this
// package in the test's own context, apart from the environment's copy, so the
// environment leaves the guest there for it.

import type { GuestFacade } from '@vmtest/core/runner'

export const GUEST_KEY = Symbol.for('jest-environment-vmtest.guest')

export type GlobalWithGuest = Record<symbol, GuestFacade | undefined>
