// SPDX-License-Identifier: GPL-2.0
/*
 * vmtest_demo: the smallest module worth testing in a guest.
 *
 *   insmod vmtest_demo.ko [answer=N] [warn=1] [oops=1]
 *
 * On load it logs "vmtest_demo: loaded answer=N" and exposes N read-only at
 * /sys/module/vmtest_demo/parameters/answer. With warn=1 it also hits a
 * WARN() during init (a kernel "WARNING: CPU: ..." splat with a backtrace,
 * and the W taint flag) but still loads. With oops=1 it dereferences a NULL
 * pointer during init: an Oops, which kills insmod and leaves the module half
 * loaded (use it on a guest of its own). On unload it logs
 * "vmtest_demo: unloaded".
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bug.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static int answer = 42;
module_param(answer, int, 0444);
MODULE_PARM_DESC(answer, "The value logged at load and shown in sysfs (default 42)");

static bool warn;
module_param(warn, bool, 0444);
MODULE_PARM_DESC(warn, "Hit WARN() during init, then load anyway (default 0)");

static bool oops;
module_param(oops, bool, 0444);
MODULE_PARM_DESC(oops, "Dereference a NULL pointer during init: an Oops (default 0)");

static int __init vmtest_demo_init(void)
{
	pr_info("loaded answer=%d\n", answer);
	WARN(warn, "vmtest_demo: asked to warn\n");
	if (oops)
		*(volatile int *)NULL = answer;
	return 0;
}

static void __exit vmtest_demo_exit(void)
{
	pr_info("unloaded\n");
}

module_init(vmtest_demo_init);
module_exit(vmtest_demo_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("vmtest examples");
MODULE_DESCRIPTION("vmtest example module: logs a parameter, optionally WARNs or Oopses");
