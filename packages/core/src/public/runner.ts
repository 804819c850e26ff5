// What the Vitest and Jest environments build on: the run's guest broker, one
// session per test file, the `guest` object, and option layering.
export { FileSession, type SessionOptions } from '../runner/session.js'
export { createGuestFacade, type GuestFacade, type FacadeHost } from '../runner/facade.js'
export { kernelVerdict, kernelLogNote } from '../runner/kernel-report.js'
export { leaseGuest, startBroker, stopBroker, type LeaseRequest, type RemoteLease } from '../host/broker/client.js'
export { parseDocblock, type FileDirectives } from '../config/docblock.js'
export { mergeLayers, fileLayers, mergeFileOptions, type OptionLayer, type RunnerOptions, type MergedOptions } from '../config/merge.js'
export { loadVmtestToml, findTarget, targetToGuestOptions, type VmtestTarget, type VmtestConfig } from '../config/vmtest-toml.js'
export { chooseKernel } from '../host/kernel/resolve.js'
export { cacheDir } from '../host/paths.js'
// For `vmtest doctor`: the host checks the engine makes on every boot, one by one.
export type { KernelInfo } from '../host/kernel/inspect.js'
export { findModuleDir, planModules, type ModulePlan } from '../host/kernel/modules.js'
export { isStaticElf } from '../host/initramfs/build.js'
export { findExecutable, findQemu } from '../host/qemu/binary.js'
export { chooseAccel, KVM_PROBE_TIMEOUT_MS, type AccelChoice } from '../host/qemu/accel.js'
export { parseMemory } from '../host/options.js'
export { REQUIRED_MODULES, OVERLAY_MODULE, inspect as inspectNamedKernel } from '../host/boot.js'
