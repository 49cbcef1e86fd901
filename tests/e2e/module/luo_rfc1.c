// SPDX-License-Identifier: GPL-2.0
/*
 * luo_rfc1: a stand-in for the Live Update Orchestrator's RFC v1 sysfs
 * interface, for liveupdate-agent's VM tier (tests/e2e/). Debian's kernels have
 * no LUO; this module gives a guest the same files with real kernfs semantics:
 *
 *   /sys/kernel/liveupdate/{state,prepare,finish}
 *   <device>/liveupdate/{requested,preserved,reclaimed}
 *
 * on a small simulated device tree udev sees (buses "luo_e2e" and
 * "luo_e2e_legacy"), with the state machine, errno values, ancestor rule and
 * sysfs_notify() wake-ups of the RFC (see shared/LUO-ABI.md). Written for the
 * project; no code was copied from the RFC series.
 *
 * Enabling: like the RFC kernel, the interface exists only when the kernel
 * command line has liveupdate=<true> and kho=<true> (kstrtobool).
 *
 * What the RFC carries in the KHO tree travels here on the kexec command line:
 *
 *   luo_rfc1.handover=updated:<major>.<minor>:<device>[,<device>...]
 *
 * written by the REBOOT stand-in (the guest's systemd-shutdown hook, see
 * tests/e2e/guest/) after a successful REBOOT step. The new boot checks it the
 * way the RFC's early boot checks the LUO node (malformed, liveupdate off,
 * major differs or minor lower: the kernel panics; see mismatch_panic) and comes
 * up in "updated" with the listed devices preserved.
 *
 * Test controls, outside the ABI files:
 *   module parameters (luo_rfc1.X= on the command line, or
 *   /sys/module/luo_rfc1/parameters/X at run time):
 *     version         this kernel's LUO version, "MAJOR.MINOR" (default 1.0)
 *     handover        the incoming handover (above); read-only at run time
 *     fail_prepare    errno (e.g. 16 for EBUSY) a later PREPARE callback fails
 *                     with, after the devices were prepared (0: succeed)
 *     fail_reboot     errno the REBOOT step fails with (0: succeed)
 *     mismatch_panic  on a refused handover, panic() as the kernel does instead
 *                     of logging loudly and coming up in "normal"
 *     rfc_notify      reproduce the RFC's notification (kernel_kobj, NULL,
 *                     "state"), which wakes no poller of liveupdate/state
 *   debugfs /sys/kernel/debug/luo_rfc1/:
 *     reboot    (w)  write 1: run the REBOOT step (what reboot(2) does); an
 *                    error here is the error reboot(2) would return
 *     handover  (r)  the handover string for the next kernel (state prepared)
 *     incoming  (r)  what this boot received: "none", "accepted ...", "refused ..."
 *     kexec     (r)  the kexec image loaded now, as the REBOOT stand-in needs it
 *                    to load it again with the handover appended: "none",
 *                    "syscall=kexec_load" (cannot be reloaded), "unreadable=1"
 *                    (its arguments could not be read), or
 *                    "syscall=kexec_file_load" and kernel=, initrd=, cmdline=
 *                    lines. Seen with kretprobes on the two kexec syscalls, so
 *                    whoever loads the target (the agent) needs no help.
 *   <device>/reclaim (w, drivers with live-update support): write 1 in state
 *     "updated" to have the driver re-attach a preserved device (reclaimed=1).
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/err.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kexec.h>
#include <linux/kprobes.h>
#include <linux/kernel.h>
#include <linux/kobject.h>
#include <linux/list.h>
#include <linux/list_sort.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/reboot.h>
#include <linux/rwsem.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>

#define LUO_HANDOVER_MAX 1024

enum luo_state { LUO_NORMAL, LUO_PREPARED, LUO_UPDATED };
static const char *const luo_state_names[] = { "normal", "prepared", "updated" };

/* ---- parameters ----------------------------------------------------------- */

static char *version = "1.0";
module_param(version, charp, 0444);
MODULE_PARM_DESC(version, "This kernel's LUO version, MAJOR.MINOR (default 1.0)");

static char *handover;
module_param(handover, charp, 0444);
MODULE_PARM_DESC(handover,
		 "Incoming handover: updated:<major>.<minor>:<dev>[,<dev>...] (set by the REBOOT stand-in)");

static int errno_param_set(const char *val, const struct kernel_param *kp)
{
	int v, ret = kstrtoint(val, 0, &v);

	if (ret)
		return ret;
	if (v < 0 || v > MAX_ERRNO)
		return -ERANGE;
	*(int *)kp->arg = v;
	return 0;
}

static const struct kernel_param_ops errno_param_ops = {
	.set = errno_param_set,
	.get = param_get_int,
};

static int fail_prepare;
module_param_cb(fail_prepare, &errno_param_ops, &fail_prepare, 0644);
MODULE_PARM_DESC(fail_prepare, "errno a later PREPARE callback fails with (0: succeed)");

static int fail_reboot;
module_param_cb(fail_reboot, &errno_param_ops, &fail_reboot, 0644);
MODULE_PARM_DESC(fail_reboot, "errno the REBOOT step fails with (0: succeed)");

static bool mismatch_panic;
module_param(mismatch_panic, bool, 0644);
MODULE_PARM_DESC(mismatch_panic, "panic() on a refused handover, as the kernel does");

static bool rfc_notify;
module_param(rfc_notify, bool, 0644);
MODULE_PARM_DESC(rfc_notify, "Notify (kernel_kobj, NULL, \"state\") like the RFC: no poller wakes");

/* ---- global state ---------------------------------------------------------- */

static DECLARE_RWSEM(luo_state_rwsem);
static enum luo_state luo_state = LUO_NORMAL;
static bool luo_enabled;
static bool luo_sysfs_ready;
static bool luo_rebooted; /* REBOOT step done, the kexec may hand over */
static unsigned int luo_major, luo_minor;
static char luo_incoming[LUO_HANDOVER_MAX + 128] = "none\n";

/* ---- the simulated device tree --------------------------------------------- */

enum luo_bus_id { BUS_NONE, BUS_LU, BUS_LEGACY };
enum luo_drv_id { DRV_NONE, DRV_HOST, DRV_NIC, DRV_DISK, DRV_LEGACY_HOST, DRV_COUNT };

struct luo_desc {
	const char *name;
	int parent; /* index in luo_layout, -1 for the root */
	enum luo_bus_id bus;
	enum luo_drv_id drv;
	const char *kind;
};

/*
 * luo_e2e                (no bus, no driver: the ancestor rule passes it)
 * |- host0   bus luo_e2e, driver luo_e2e_host   (live update)
 * |  |- nic0   driver luo_e2e_nic               (live update)
 * |  |- nic1   driver luo_e2e_nic               (live update)
 * |  `- disk0  driver luo_e2e_disk              (no live update: EINVAL)
 * `- host1   bus luo_e2e_legacy (no live update), driver luo_e2e_legacy_host
 *    `- nic2   driver luo_e2e_nic               (EINVAL: ancestor's bus)
 */
static const struct luo_desc luo_layout[] = {
	{ "luo_e2e", -1, BUS_NONE, DRV_NONE, "root" },
	{ "host0", 0, BUS_LU, DRV_HOST, "host" },
	{ "nic0", 1, BUS_LU, DRV_NIC, "nic" },
	{ "nic1", 1, BUS_LU, DRV_NIC, "nic" },
	{ "disk0", 1, BUS_LU, DRV_DISK, "disk" },
	{ "host1", 0, BUS_LEGACY, DRV_LEGACY_HOST, "host" },
	{ "nic2", 5, BUS_LU, DRV_NIC, "nic" },
};
#define LUO_NDEV ARRAY_SIZE(luo_layout)

struct luo_dev {
	struct device dev;
	const struct luo_desc *desc;
	bool requested;
	bool preserved;
	bool reclaimed;
	int depth; /* > 0 while on the preserve list */
	struct list_head entry;
};

static struct luo_dev *luo_devs[LUO_NDEV];
static LIST_HEAD(luo_preserve_list);

static inline struct luo_dev *to_luo_dev(struct device *dev)
{
	return container_of(dev, struct luo_dev, dev);
}

struct luo_driver {
	struct device_driver drv;
	bool liveupdate;
};

static int luo_bus_match(struct device *dev, struct device_driver *drv);
static int luo_bus_uevent(struct device *dev, struct kobj_uevent_env *env);

static struct bus_type luo_bus = {
	.name = "luo_e2e",
	.match = luo_bus_match,
	.uevent = luo_bus_uevent,
};

static struct bus_type luo_legacy_bus = {
	.name = "luo_e2e_legacy",
	.match = luo_bus_match,
	.uevent = luo_bus_uevent,
};

static bool luo_bus_liveupdate(const struct bus_type *bus)
{
	return bus == &luo_bus;
}

static struct luo_driver luo_drivers[DRV_COUNT];

static bool is_luo_device(struct device *dev)
{
	unsigned int i;

	for (i = 0; i < LUO_NDEV; i++)
		if (luo_devs[i] && &luo_devs[i]->dev == dev)
			return true;
	return false;
}

static int luo_bus_match(struct device *dev, struct device_driver *drv)
{
	if (!is_luo_device(dev))
		return 0;
	return drv == &luo_drivers[to_luo_dev(dev)->desc->drv].drv;
}

static int luo_bus_uevent(struct device *dev, struct kobj_uevent_env *env)
{
	const struct luo_desc *desc = to_luo_dev(dev)->desc;

	return add_uevent_var(env, "LUO_E2E_KIND=%s", desc->kind);
}

/* ---- state helpers --------------------------------------------------------- */

static void luo_notify_state(void)
{
	if (!luo_sysfs_ready)
		return;
	if (rfc_notify)
		sysfs_notify(kernel_kobj, NULL, "state");
	else
		sysfs_notify(kernel_kobj, "liveupdate", "state");
}

static void luo_set_state(enum luo_state state)
{
	pr_info("Switched from [%s] to [%s] state\n", luo_state_names[luo_state],
		luo_state_names[state]);
	WRITE_ONCE(luo_state, state);
	luo_notify_state();
}

static void luo_set_preserved(struct luo_dev *ld, bool value)
{
	if (ld->preserved == value)
		return;
	ld->preserved = value;
	sysfs_notify(&ld->dev.kobj, "liveupdate", "preserved");
}

static void luo_set_reclaimed(struct luo_dev *ld, bool value)
{
	if (ld->reclaimed == value)
		return;
	ld->reclaimed = value;
	sysfs_notify(&ld->dev.kobj, "liveupdate", "reclaimed");
}

/* The ancestor rule: the device and every ancestor need live-update support. */
static bool luo_possible(struct luo_dev *ld)
{
	struct device *dev;

	for (dev = &ld->dev; dev; dev = dev->parent) {
		if (dev->driver) {
			struct luo_driver *drv = container_of(dev->driver, struct luo_driver, drv);

			if (!is_luo_device(dev) || !drv->liveupdate) {
				dev_warn(&ld->dev, "driver[%s] no liveupdate callback\n",
					 dev->driver->name);
				return false;
			}
		}
		if (dev->bus && !luo_bus_liveupdate(dev->bus)) {
			dev_warn(&ld->dev, "bus[%s] no liveupdate callback\n", dev->bus->name);
			return false;
		}
	}
	return true;
}

static int luo_depth(struct luo_dev *ld)
{
	struct device *dev;
	int depth = 0;

	for (dev = &ld->dev; dev; dev = dev->parent)
		depth++;
	return depth;
}

static int luo_depth_cmp(void *priv, const struct list_head *a, const struct list_head *b)
{
	int da = list_entry(a, struct luo_dev, entry)->depth;
	int db = list_entry(b, struct luo_dev, entry)->depth;

	return da > db ? -1 : da < db ? 1 : 0;
}

/* Requested devices and their ancestors, deepest first. */
static void luo_build_preserve_list(void)
{
	unsigned int i;

	for (i = 0; i < LUO_NDEV; i++) {
		struct luo_dev *ld = luo_devs[i];
		struct device *dev;

		if (!ld->requested)
			continue;
		for (dev = &ld->dev; dev; dev = dev->parent) {
			struct luo_dev *up = to_luo_dev(dev);

			if (up->depth)
				break;
			up->depth = luo_depth(up);
			list_add_tail(&up->entry, &luo_preserve_list);
		}
	}
	list_sort(NULL, &luo_preserve_list, luo_depth_cmp);
}

static void luo_destroy_preserve_list(void)
{
	struct luo_dev *ld, *tmp;

	list_for_each_entry_safe(ld, tmp, &luo_preserve_list, entry) {
		list_del_init(&ld->entry);
		ld->depth = 0;
	}
}

/* CANCEL to every device on the preserve list, parents first. */
static void luo_cancel_devices(void)
{
	struct luo_dev *ld;

	list_for_each_entry_reverse(ld, &luo_preserve_list, entry) {
		dev_info(&ld->dev, "live update cancelled\n");
		luo_set_preserved(ld, false);
	}
	luo_destroy_preserve_list();
}

static int luo_prepare(void)
{
	struct luo_dev *ld;

	if (down_write_killable(&luo_state_rwsem)) {
		pr_warn("%s, change state canceled by user\n", __func__);
		return -EAGAIN;
	}
	if (luo_state != LUO_NORMAL) {
		pr_warn("Can't switch to [prepared] from [%s] state\n", luo_state_names[luo_state]);
		up_write(&luo_state_rwsem);
		return -EINVAL;
	}
	luo_build_preserve_list();
	list_for_each_entry(ld, &luo_preserve_list, entry) {
		dev_info(&ld->dev, "live update prepared\n");
		luo_set_preserved(ld, true);
	}
	if (fail_prepare) {
		int err = fail_prepare;

		pr_warn("PREPARE failed in a later subsystem (fail_prepare=%d): cancelling\n", err);
		luo_cancel_devices();
		up_write(&luo_state_rwsem);
		return -err;
	}
	luo_rebooted = false;
	luo_set_state(LUO_PREPARED);
	up_write(&luo_state_rwsem);
	return 0;
}

static int luo_cancel(void)
{
	if (down_write_killable(&luo_state_rwsem)) {
		pr_warn("%s, change state canceled by user\n", __func__);
		return -EAGAIN;
	}
	if (luo_state != LUO_PREPARED) {
		pr_warn("Can't switch to [normal] from [%s] state\n", luo_state_names[luo_state]);
		up_write(&luo_state_rwsem);
		return -EINVAL;
	}
	luo_cancel_devices();
	luo_rebooted = false;
	luo_set_state(LUO_NORMAL);
	up_write(&luo_state_rwsem);
	return 0;
}

static int luo_finish(void)
{
	struct luo_dev *ld;
	unsigned int i;

	if (down_write_killable(&luo_state_rwsem)) {
		pr_warn("%s, change state canceled by user\n", __func__);
		return -EAGAIN;
	}
	if (luo_state != LUO_UPDATED) {
		pr_warn("Can't switch to [normal] from [%s] state\n", luo_state_names[luo_state]);
		up_write(&luo_state_rwsem);
		return -EINVAL;
	}
	for (i = 0; i < LUO_NDEV; i++) {
		ld = luo_devs[i];
		if (!ld->preserved)
			continue;
		ld->depth = luo_depth(ld);
		list_add_tail(&ld->entry, &luo_preserve_list);
	}
	list_sort(NULL, &luo_preserve_list, luo_depth_cmp);
	list_for_each_entry(ld, &luo_preserve_list, entry) {
		if (!ld->reclaimed)
			dev_warn(&ld->dev, "Device was not reclaimed during live update\n");
		luo_set_reclaimed(ld, false);
		luo_set_preserved(ld, false);
	}
	luo_destroy_preserve_list();
	luo_set_state(LUO_NORMAL);
	up_write(&luo_state_rwsem);
	return 0;
}

/* The REBOOT step: what reboot(2) runs before the kexec jump. */
static int luo_reboot(void)
{
	struct luo_dev *ld;

	if (down_write_killable(&luo_state_rwsem)) {
		pr_warn("%s, change state canceled by user\n", __func__);
		return -EAGAIN;
	}
	if (luo_state != LUO_PREPARED) {
		pr_info("REBOOT in state [%s]: plain kexec, nothing handed over\n",
			luo_state_names[luo_state]);
		up_write(&luo_state_rwsem);
		return 0;
	}
	list_for_each_entry(ld, &luo_preserve_list, entry)
		dev_info(&ld->dev, "live update reboot\n");
	if (fail_reboot) {
		int err = fail_reboot;

		pr_warn("REBOOT failed (fail_reboot=%d): cancelling, the kexec must not happen\n",
			err);
		luo_cancel_devices();
		luo_rebooted = false;
		luo_set_state(LUO_NORMAL);
		up_write(&luo_state_rwsem);
		return -err;
	}
	luo_rebooted = true;
	up_write(&luo_state_rwsem);
	return 0;
}

/* The handover string for the next kernel; the caller holds the state lock. */
static int luo_handover_string(char *buf, size_t size)
{
	struct luo_dev *ld;
	size_t len;
	bool first = true;

	len = scnprintf(buf, size, "updated:%u.%u:", luo_major, luo_minor);
	/* Parents first, as the next kernel creates them. */
	list_for_each_entry_reverse(ld, &luo_preserve_list, entry) {
		len += scnprintf(buf + len, size - len, "%s%s", first ? "" : ",",
				 dev_name(&ld->dev));
		first = false;
	}
	if (len >= size - 1)
		return -E2BIG;
	return len;
}

/* ---- /sys/kernel/liveupdate ------------------------------------------------- */

static ssize_t state_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", luo_state_names[READ_ONCE(luo_state)]);
}

static ssize_t prepare_store(struct kobject *kobj, struct kobj_attribute *attr,
			     const char *buf, size_t count)
{
	long val;
	int ret;

	if (kstrtol(buf, 0, &val) < 0)
		return -EINVAL;
	if (val != 1 && val != 0)
		return -EINVAL;
	ret = val ? luo_prepare() : luo_cancel();
	return ret ? ret : count;
}

static ssize_t finish_store(struct kobject *kobj, struct kobj_attribute *attr,
			    const char *buf, size_t count)
{
	long val;
	int ret;

	if (kstrtol(buf, 0, &val) < 0)
		return -EINVAL;
	if (val != 1)
		return -EINVAL;
	ret = luo_finish();
	return ret ? ret : count;
}

static struct kobj_attribute state_attribute = __ATTR_RO(state);
static struct kobj_attribute prepare_attribute = __ATTR_WO(prepare);
static struct kobj_attribute finish_attribute = __ATTR_WO(finish);

static struct attribute *luo_attrs[] = {
	&state_attribute.attr,
	&prepare_attribute.attr,
	&finish_attribute.attr,
	NULL,
};

static const struct attribute_group luo_attr_group = {
	.name = "liveupdate",
	.attrs = luo_attrs,
};

/* ---- <device>/liveupdate/ ---------------------------------------------------- */

static ssize_t requested_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", to_luo_dev(dev)->requested);
}

static ssize_t requested_store(struct device *dev, struct device_attribute *attr,
			       const char *buf, size_t count)
{
	struct luo_dev *ld = to_luo_dev(dev);
	long val;

	if (kstrtol(buf, 0, &val) < 0)
		return -EINVAL;
	if (val != 1 && val != 0)
		return -EINVAL;
	if (ld->requested == !!val)
		return count;
	if (down_read_killable(&luo_state_rwsem)) {
		dev_warn(dev, "Changing requested state Canceled by user\n");
		return -EAGAIN;
	}
	if (luo_state != LUO_NORMAL) {
		dev_warn(dev, "Participation can be requested only in [normal] state\n");
		up_read(&luo_state_rwsem);
		return -EINVAL;
	}
	if (val && !luo_possible(ld)) {
		up_read(&luo_state_rwsem);
		return -EINVAL;
	}
	ld->requested = !!val;
	up_read(&luo_state_rwsem);
	return count;
}

static ssize_t preserved_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", to_luo_dev(dev)->preserved);
}

static ssize_t reclaimed_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", to_luo_dev(dev)->reclaimed);
}

static DEVICE_ATTR_RW(requested);
static DEVICE_ATTR_RO(preserved);
static DEVICE_ATTR_RO(reclaimed);

static struct attribute *luo_dev_lu_attrs[] = {
	&dev_attr_requested.attr,
	&dev_attr_preserved.attr,
	&dev_attr_reclaimed.attr,
	NULL,
};

static const struct attribute_group luo_dev_lu_group = {
	.name = "liveupdate",
	.attrs = luo_dev_lu_attrs,
};

static const struct attribute_group *luo_dev_groups[] = {
	&luo_dev_lu_group,
	NULL,
};

/* The driver's own control: re-attach a preserved device in the new kernel. */
static ssize_t reclaim_store(struct device *dev, struct device_attribute *attr,
			     const char *buf, size_t count)
{
	struct luo_dev *ld = to_luo_dev(dev);
	long val;
	int ret = count;

	if (kstrtol(buf, 0, &val) < 0 || val != 1)
		return -EINVAL;
	if (down_read_killable(&luo_state_rwsem))
		return -EAGAIN;
	if (luo_state != LUO_UPDATED || !ld->preserved) {
		dev_warn(dev, "reclaim: not a preserved device of an updated kernel\n");
		ret = -EINVAL;
	} else {
		dev_info(dev, "reclaimed after live update\n");
		luo_set_reclaimed(ld, true);
	}
	up_read(&luo_state_rwsem);
	return ret;
}

static DEVICE_ATTR_WO(reclaim);

static struct attribute *luo_drv_attrs[] = {
	&dev_attr_reclaim.attr,
	NULL,
};

ATTRIBUTE_GROUPS(luo_drv);

static int luo_probe(struct device *dev)
{
	return 0;
}

static void luo_dev_release(struct device *dev)
{
	kfree(to_luo_dev(dev));
}

/* ---- debugfs controls ------------------------------------------------------- */

static struct dentry *luo_debugfs;

static ssize_t reboot_write(struct file *file, const char __user *ubuf, size_t count,
			    loff_t *ppos)
{
	long val;
	int ret;

	ret = kstrtol_from_user(ubuf, count, 0, &val);
	if (ret)
		return ret;
	if (val != 1)
		return -EINVAL;
	ret = luo_reboot();
	return ret ? ret : count;
}

static const struct file_operations reboot_fops = {
	.owner = THIS_MODULE,
	.write = reboot_write,
	.llseek = noop_llseek,
};

static ssize_t handover_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	char *buf;
	int len;
	ssize_t ret;

	buf = kmalloc(LUO_HANDOVER_MAX, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	if (down_read_killable(&luo_state_rwsem)) {
		kfree(buf);
		return -EAGAIN;
	}
	if (luo_state != LUO_PREPARED)
		len = -ENODATA;
	else
		len = luo_handover_string(buf, LUO_HANDOVER_MAX - 1);
	up_read(&luo_state_rwsem);
	if (len < 0) {
		kfree(buf);
		return len;
	}
	buf[len++] = '\n';
	ret = simple_read_from_buffer(ubuf, count, ppos, buf, len);
	kfree(buf);
	return ret;
}

static const struct file_operations handover_fops = {
	.owner = THIS_MODULE,
	.read = handover_read,
	.llseek = default_llseek,
};

static ssize_t incoming_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	return simple_read_from_buffer(ubuf, count, ppos, luo_incoming, strlen(luo_incoming));
}

static const struct file_operations incoming_fops = {
	.owner = THIS_MODULE,
	.read = incoming_read,
	.llseek = default_llseek,
};


/* ---- the loaded kexec image (for the REBOOT stand-in) ------------------------ */

#define LUO_PATH_MAX 256
#define LUO_CMDLINE_MAX 2048

enum luo_kexec_kind { KEXEC_NONE, KEXEC_FILE, KEXEC_SEGMENTS, KEXEC_UNREADABLE };

struct luo_kexec_load {
	enum luo_kexec_kind kind;
	bool ignore; /* a crash-kernel operation */
	bool unload;
	char kernel[LUO_PATH_MAX];
	char initrd[LUO_PATH_MAX];
	char cmdline[LUO_CMDLINE_MAX];
};

static DEFINE_SPINLOCK(luo_kexec_lock);
static struct luo_kexec_load luo_kexec; /* what is loaded now */
static bool luo_kexec_file_probed, luo_kexec_probed;

/* The path of the loader's fd (as the loader sees it); "" if unknown. */
static void luo_fd_path(int fd, char *out, size_t size)
{
	struct file *file;
	char *path;

	out[0] = 0;
	if (fd < 0)
		return;
	file = fget(fd);
	if (!file)
		return;
	path = d_path(&file->f_path, out, size);
	if (IS_ERR(path))
		out[0] = 0;
	else
		memmove(out, path, strlen(path) + 1);
	fput(file);
}

/* kexec_file_load(kernel_fd, initrd_fd, cmdline_len, cmdline, flags) */
static int luo_kexec_file_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct luo_kexec_load *load = (struct luo_kexec_load *)ri->data;
	const struct pt_regs *user = (const struct pt_regs *)regs->di;
	unsigned long flags = user->r8, len = user->dx;

	memset(load, 0, sizeof(*load));
	load->kind = KEXEC_FILE;
	load->ignore = flags & KEXEC_FILE_ON_CRASH;
	load->unload = flags & KEXEC_FILE_UNLOAD;
	if (load->ignore || load->unload)
		return 0;
	luo_fd_path(user->di, load->kernel, sizeof(load->kernel));
	if (!(flags & KEXEC_FILE_NO_INITRAMFS))
		luo_fd_path(user->si, load->initrd, sizeof(load->initrd));
	len = min_t(unsigned long, len, LUO_CMDLINE_MAX - 1);
	if (len > 0 && copy_from_user_nofault(load->cmdline, (const void __user *)user->r10, len))
		load->kind = KEXEC_UNREADABLE;
	load->cmdline[len] = 0;
	if (!load->kernel[0])
		load->kind = KEXEC_UNREADABLE;
	return 0;
}

/* kexec_load(entry, nr_segments, segments, flags) */
static int luo_kexec_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct luo_kexec_load *load = (struct luo_kexec_load *)ri->data;
	const struct pt_regs *user = (const struct pt_regs *)regs->di;

	memset(load, 0, sizeof(*load));
	load->kind = KEXEC_SEGMENTS;
	load->ignore = user->r10 & KEXEC_ON_CRASH;
	load->unload = user->si == 0;
	return 0;
}

static int luo_kexec_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct luo_kexec_load *load = (struct luo_kexec_load *)ri->data;
	unsigned long irqflags;

	if (regs_return_value(regs) != 0 || load->ignore)
		return 0;
	spin_lock_irqsave(&luo_kexec_lock, irqflags);
	if (load->unload)
		memset(&luo_kexec, 0, sizeof(luo_kexec));
	else
		memcpy(&luo_kexec, load, sizeof(luo_kexec));
	spin_unlock_irqrestore(&luo_kexec_lock, irqflags);
	return 0;
}

static struct kretprobe luo_kexec_file_probe = {
	.kp.symbol_name = "__x64_sys_kexec_file_load",
	.entry_handler = luo_kexec_file_entry,
	.handler = luo_kexec_return,
	.data_size = sizeof(struct luo_kexec_load),
	.maxactive = 4,
};

static struct kretprobe luo_kexec_probe = {
	.kp.symbol_name = "__x64_sys_kexec_load",
	.entry_handler = luo_kexec_entry,
	.handler = luo_kexec_return,
	.data_size = sizeof(struct luo_kexec_load),
	.maxactive = 4,
};

static void luo_probe_kexec(void)
{
	int ret = register_kretprobe(&luo_kexec_file_probe);

	if (ret)
		pr_err("cannot watch kexec_file_load (%d): the REBOOT stand-in cannot add the handover to a loaded kernel\n",
		       ret);
	luo_kexec_file_probed = !ret;
	ret = register_kretprobe(&luo_kexec_probe);
	if (ret)
		pr_err("cannot watch kexec_load (%d)\n", ret);
	luo_kexec_probed = !ret;
}

static void luo_unprobe_kexec(void)
{
	if (luo_kexec_file_probed)
		unregister_kretprobe(&luo_kexec_file_probe);
	if (luo_kexec_probed)
		unregister_kretprobe(&luo_kexec_probe);
}

static ssize_t kexec_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	struct luo_kexec_load *load;
	unsigned long irqflags;
	size_t size = LUO_CMDLINE_MAX + 2 * LUO_PATH_MAX + 128;
	char *buf;
	int len;
	ssize_t ret;

	load = kmalloc(sizeof(*load), GFP_KERNEL);
	buf = kmalloc(size, GFP_KERNEL);
	if (!load || !buf) {
		kfree(load);
		kfree(buf);
		return -ENOMEM;
	}
	spin_lock_irqsave(&luo_kexec_lock, irqflags);
	memcpy(load, &luo_kexec, sizeof(*load));
	spin_unlock_irqrestore(&luo_kexec_lock, irqflags);
	if (load->kind == KEXEC_FILE)
		len = scnprintf(buf, size,
				"syscall=kexec_file_load\nkernel=%s\ninitrd=%s\ncmdline=%s\n",
				load->kernel, load->initrd, load->cmdline);
	else if (load->kind == KEXEC_SEGMENTS)
		len = scnprintf(buf, size, "syscall=kexec_load\n");
	else if (load->kind == KEXEC_UNREADABLE)
		len = scnprintf(buf, size, "syscall=kexec_file_load\nunreadable=1\n");
	else
		len = scnprintf(buf, size, "none\n");
	ret = simple_read_from_buffer(ubuf, count, ppos, buf, len);
	kfree(load);
	kfree(buf);
	return ret;
}

static const struct file_operations kexec_fops = {
	.owner = THIS_MODULE,
	.read = kexec_read,
	.llseek = default_llseek,
};

/* ---- kexec ------------------------------------------------------------------ */

static int luo_reboot_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	const char *cmd = data;

	if (action != SYS_RESTART || !cmd || strcmp(cmd, "kexec reboot"))
		return NOTIFY_DONE;
	if (luo_state == LUO_PREPARED && luo_rebooted)
		pr_info("kexec in state [prepared]: the preserved devices are handed over\n");
	else if (luo_state == LUO_PREPARED)
		pr_warn("kexec in state [prepared] without the REBOOT step: nothing is handed over\n");
	return NOTIFY_DONE;
}

static struct notifier_block luo_reboot_nb = {
	.notifier_call = luo_reboot_notify,
};

/* ---- load ------------------------------------------------------------------- */

static int luo_parse_version(const char *text, unsigned int *major, unsigned int *minor)
{
	char extra;

	if (!text || sscanf(text, "%u.%u%c", major, minor, &extra) != 2)
		return -EINVAL;
	return 0;
}

/*
 * The kernel command line, for liveupdate= and kho= (a module cannot see
 * boot_command_line; /proc/cmdline holds the same text).
 */
static void luo_read_enabled(void)
{
	bool liveupdate = false, kho = false;
	struct file *file;
	char *buf, *cursor, *token;
	loff_t pos = 0;
	ssize_t len;

	buf = kzalloc(PAGE_SIZE, GFP_KERNEL);
	if (!buf)
		return;
	file = filp_open("/proc/cmdline", O_RDONLY, 0);
	if (IS_ERR(file)) {
		pr_err("cannot read /proc/cmdline (%ld): live update stays disabled\n",
		       PTR_ERR(file));
		kfree(buf);
		return;
	}
	len = kernel_read(file, buf, PAGE_SIZE - 1, &pos);
	filp_close(file, NULL);
	if (len < 0)
		len = 0;
	buf[len] = 0;
	cursor = strim(buf);
	while ((token = strsep(&cursor, " \t\n")) != NULL) {
		if (!strncmp(token, "liveupdate=", 11))
			liveupdate = !kstrtobool(token + 11, &liveupdate) && liveupdate;
		else if (!strncmp(token, "kho=", 4))
			kho = !kstrtobool(token + 4, &kho) && kho;
	}
	kfree(buf);
	luo_enabled = liveupdate && kho;
	if (!luo_enabled)
		pr_info("live update disabled (liveupdate=%d kho=%d on the command line)\n",
			liveupdate, kho);
}

static __printf(1, 2) void luo_refuse(const char *fmt, ...)
{
	va_list args;
	int len;

	len = scnprintf(luo_incoming, sizeof(luo_incoming), "refused ");
	va_start(args, fmt);
	len += vscnprintf(luo_incoming + len, sizeof(luo_incoming) - len, fmt, args);
	va_end(args);
	scnprintf(luo_incoming + len, sizeof(luo_incoming) - len, "\n");

	if (mismatch_panic)
		panic("luo_rfc1: Orchestrator version mismatch: %s", luo_incoming);
	pr_emerg("LIVE UPDATE HANDOVER REFUSED: %s", luo_incoming);
	pr_emerg("A kernel with LUO panics here (\"Orchestrator version mismatch\"); this stand-in comes up in [normal] with nothing preserved instead (luo_rfc1.mismatch_panic=1 panics)\n");
}

static int luo_find(const char *name)
{
	unsigned int i;

	for (i = 0; i < LUO_NDEV; i++)
		if (!strcmp(luo_layout[i].name, name))
			return i;
	return -1;
}

/* The RFC's early-boot check of the incoming LUO node, on the handover parameter. */
static void luo_take_handover(void)
{
	unsigned int prev_major, prev_minor;
	char *copy, *cursor, *state, *ver, *list, *name;
	size_t len;

	if (!handover || !*handover)
		return;
	copy = kstrdup(handover, GFP_KERNEL);
	if (!copy)
		return;
	cursor = copy;
	state = strsep(&cursor, ":");
	ver = strsep(&cursor, ":");
	list = cursor;
	if (!state || strcmp(state, "updated") || !ver || !list ||
	    luo_parse_version(ver, &prev_major, &prev_minor)) {
		luo_refuse("reason=malformed handover=%s", handover);
		goto out;
	}
	if (!luo_enabled) {
		luo_refuse("reason=disabled previous=%u.%u (liveupdate or kho off)", prev_major,
			   prev_minor);
		goto out;
	}
	if (prev_major != luo_major || prev_minor > luo_minor) {
		luo_refuse("reason=version-mismatch previous=%u.%u current=%u.%u", prev_major,
			   prev_minor, luo_major, luo_minor);
		goto out;
	}
	len = scnprintf(luo_incoming, sizeof(luo_incoming),
			"accepted previous=%u.%u current=%u.%u devices=", prev_major, prev_minor,
			luo_major, luo_minor);
	while ((name = strsep(&list, ",")) != NULL) {
		int index;

		if (!*name)
			continue;
		index = luo_find(name);
		if (index < 0) {
			pr_warn("handover names an unknown device \"%s\": ignored\n", name);
			continue;
		}
		luo_devs[index]->preserved = true;
		len += scnprintf(luo_incoming + len, sizeof(luo_incoming) - len, "%s%s",
				 luo_incoming[len - 1] == '=' ? "" : ",", name);
	}
	scnprintf(luo_incoming + len, sizeof(luo_incoming) - len, "\n");
	luo_state = LUO_UPDATED;
	pr_info("live update from LUO %u.%u: state [updated]\n", prev_major, prev_minor);
out:
	kfree(copy);
}

static void luo_remove_devices(void)
{
	int i;

	for (i = LUO_NDEV - 1; i >= 0; i--) {
		if (luo_devs[i])
			device_unregister(&luo_devs[i]->dev);
		luo_devs[i] = NULL;
	}
}

static int luo_add_devices(void)
{
	unsigned int i;
	int ret;

	for (i = 0; i < LUO_NDEV; i++) {
		const struct luo_desc *desc = &luo_layout[i];
		struct luo_dev *ld = kzalloc(sizeof(*ld), GFP_KERNEL);

		if (!ld)
			return -ENOMEM;
		ld->desc = desc;
		INIT_LIST_HEAD(&ld->entry);
		device_initialize(&ld->dev);
		ld->dev.release = luo_dev_release;
		/*
		 * Without liveupdate/kho the RFC creates neither /sys/kernel/liveupdate
		 * nor any device's liveupdate/ directory.
		 */
		ld->dev.groups = luo_enabled ? luo_dev_groups : NULL;
		ld->dev.parent = desc->parent < 0 ? NULL : &luo_devs[desc->parent]->dev;
		ld->dev.bus = desc->bus == BUS_LU ? &luo_bus :
			      desc->bus == BUS_LEGACY ? &luo_legacy_bus : NULL;
		ret = dev_set_name(&ld->dev, "%s", desc->name);
		if (ret) {
			put_device(&ld->dev);
			return ret;
		}
		luo_devs[i] = ld;
		ret = device_add(&ld->dev);
		if (ret) {
			luo_devs[i] = NULL;
			put_device(&ld->dev);
			return ret;
		}
	}
	return 0;
}

static void luo_register_driver(enum luo_drv_id id, const char *name, struct bus_type *bus,
				bool liveupdate)
{
	struct luo_driver *drv = &luo_drivers[id];

	drv->drv.name = name;
	drv->drv.bus = bus;
	drv->drv.owner = THIS_MODULE;
	drv->drv.probe = luo_probe;
	drv->drv.dev_groups = liveupdate ? luo_drv_groups : NULL;
	drv->liveupdate = liveupdate;
}

static void luo_unregister_drivers(void)
{
	int id;

	for (id = DRV_COUNT - 1; id > DRV_NONE; id--)
		if (luo_drivers[id].drv.name && luo_drivers[id].drv.p)
			driver_unregister(&luo_drivers[id].drv);
}

static int __init luo_init(void)
{
	int id, ret;

	if (luo_parse_version(version, &luo_major, &luo_minor)) {
		pr_err("luo_rfc1.version=\"%s\" is not MAJOR.MINOR\n", version ? version : "");
		return -EINVAL;
	}
	luo_read_enabled();

	ret = bus_register(&luo_bus);
	if (ret)
		return ret;
	ret = bus_register(&luo_legacy_bus);
	if (ret)
		goto err_bus;
	luo_register_driver(DRV_HOST, "luo_e2e_host", &luo_bus, true);
	luo_register_driver(DRV_NIC, "luo_e2e_nic", &luo_bus, true);
	luo_register_driver(DRV_DISK, "luo_e2e_disk", &luo_bus, false);
	luo_register_driver(DRV_LEGACY_HOST, "luo_e2e_legacy_host", &luo_legacy_bus, true);
	for (id = DRV_NONE + 1; id < DRV_COUNT; id++) {
		ret = driver_register(&luo_drivers[id].drv);
		if (ret)
			goto err_drivers;
	}

	ret = luo_add_devices();
	if (ret)
		goto err_devices;

	luo_take_handover();

	if (luo_enabled) {
		ret = sysfs_create_group(kernel_kobj, &luo_attr_group);
		if (ret)
			goto err_devices;
		luo_sysfs_ready = true;
	}

	luo_debugfs = debugfs_create_dir("luo_rfc1", NULL);
	debugfs_create_file("reboot", 0200, luo_debugfs, NULL, &reboot_fops);
	debugfs_create_file("handover", 0400, luo_debugfs, NULL, &handover_fops);
	debugfs_create_file("incoming", 0400, luo_debugfs, NULL, &incoming_fops);
	debugfs_create_file("kexec", 0400, luo_debugfs, NULL, &kexec_fops);
	luo_probe_kexec();
	register_reboot_notifier(&luo_reboot_nb);

	pr_info("LUO %u.%u stand-in loaded: live update %s, state [%s]\n", luo_major, luo_minor,
		luo_enabled ? "enabled" : "disabled", luo_state_names[luo_state]);
	return 0;

err_devices:
	luo_remove_devices();
err_drivers:
	luo_unregister_drivers();
	bus_unregister(&luo_legacy_bus);
err_bus:
	bus_unregister(&luo_bus);
	return ret;
}

static void __exit luo_exit(void)
{
	unregister_reboot_notifier(&luo_reboot_nb);
	luo_unprobe_kexec();
	debugfs_remove_recursive(luo_debugfs);
	if (luo_sysfs_ready)
		sysfs_remove_group(kernel_kobj, &luo_attr_group);
	luo_destroy_preserve_list();
	luo_remove_devices();
	luo_unregister_drivers();
	bus_unregister(&luo_legacy_bus);
	bus_unregister(&luo_bus);
}

module_init(luo_init);
module_exit(luo_exit);

MODULE_DESCRIPTION("Live Update Orchestrator RFC v1 sysfs interface stand-in (liveupdate-agent VM tier)");
MODULE_LICENSE("GPL");
