/*
 * luo-sim: the Live Update Orchestrator of the RFC v1 series (kernel/liveupdate.c
 * and drivers/base/dev_liveupdate.c in the thread under /work/shared/seed),
 * re-implemented from its described behaviour:
 *
 * - the state machine normal → prepared → (reboot) → updated → normal, with
 *   the state lock taken "killable" (EAGAIN when interrupted; simulated by the
 *   control channel's `eagain N`);
 * - a notifier chain of subsystems called like blocking_notifier_call_chain:
 *   highest priority value first, equal priorities in registration order. The
 *   RFC numbers BEFORE_DEVICES=0, WITH_DEVICES=1, AFTER_DEVICES=2, so as
 *   written AFTER_DEVICES callbacks run first; the simulator keeps that.
 *   PREPARE is "robust": on a failure the subsystems called before the failing
 *   one get CANCEL. REBOOT stops at the first failure, then CANCEL goes to all.
 * - the device layer ("devices" subsystem): the preserve list is the requested
 *   devices plus all their ancestors, deepest first (stable within a depth, in
 *   device order); per device the driver callback, then the bus callback; on a
 *   failure the devices before it are cancelled in reverse order (bus, then
 *   driver), `preserved` cleared, the list destroyed. FINISH walks the
 *   preserved devices deepest first, warns about each one not reclaimed, and
 *   clears `preserved` and `reclaimed`.
 * - the attribute stores with kstrtol(buf, 0) and their exact errno order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "luo_sim.h"

const char *const state_names[] = {"normal", "prepared", "updated"};
const char *const event_names[] = {"PREPARE", "REBOOT", "FINISH", "CANCEL"};

/* ---- kstrtol, as lib/kstrtox.c behaves ----------------------------------- */
#define KSTRTOX_OVERFLOW (1u << 31)

static const char *parse_integer_fixup_radix(const char *s, unsigned *base)
{
	if (*base == 0) {
		if (s[0] == '0') {
			char x = s[1] | 0x20;
			char d = s[1] ? s[2] : 0;
			bool xdigit = (d >= '0' && d <= '9') || ((d | 0x20) >= 'a' && (d | 0x20) <= 'f');
			*base = (x == 'x' && xdigit) ? 16 : 8;
		} else {
			*base = 10;
		}
	}
	if (*base == 16 && s[0] == '0' && (s[1] | 0x20) == 'x')
		s += 2;
	return s;
}

static unsigned parse_integer(const char *s, unsigned base, unsigned long long *p)
{
	unsigned long long res = 0;
	unsigned rv = 0;
	for (;; s++) {
		unsigned c = (unsigned char)*s, lc = c | 0x20, val;
		if (c >= '0' && c <= '9')
			val = c - '0';
		else if (lc >= 'a' && lc <= 'f')
			val = lc - 'a' + 10;
		else
			break;
		if (val >= base)
			break;
		if (res & (~0ull << 60)) {
			if (res > (~0ull - val) / base)
				rv |= KSTRTOX_OVERFLOW;
		}
		res = res * base + val;
		rv++;
	}
	*p = res;
	return rv;
}

static int kstrtoull_(const char *s, unsigned base, unsigned long long *res)
{
	unsigned long long r;
	s = parse_integer_fixup_radix(s, &base);
	unsigned rv = parse_integer(s, base, &r);
	if (rv & KSTRTOX_OVERFLOW)
		return -ERANGE;
	if (rv == 0)
		return -EINVAL;
	s += rv;
	if (*s == '\n')
		s++;
	if (*s)
		return -EINVAL;
	*res = r;
	return 0;
}

int kstrtol(const char *s, unsigned base, long *res)
{
	unsigned long long tmp;
	int rv;
	if (s[0] == '-') {
		rv = kstrtoull_(s + 1, base, &tmp);
		if (rv < 0)
			return rv;
		if ((long long)-tmp > 0)
			return -ERANGE;
		*res = (long)-tmp;
	} else {
		if (s[0] == '+')
			s++;
		rv = kstrtoull_(s, base, &tmp);
		if (rv < 0)
			return rv;
		if ((long long)tmp < 0)
			return -ERANGE;
		*res = (long)tmp;
	}
	return 0;
}

/* ---- event log ------------------------------------------------------------- */
#define EVENTS_MAX 262144u
static char **events;
static uint64_t events_seq;     /* events logged in total */
static uint64_t events_first;   /* seq of the oldest kept event */

void event_log(struct buf *fields)
{
	if (!events)
		events = calloc(EVENTS_MAX, sizeof *events);
	struct buf line = {0};
	buf_printf(&line, "{\"seq\":%llu,\"boot\":%llu,", (unsigned long long)events_seq + 1,
		   (unsigned long long)S.boot);
	buf_put(&line, fields->p, fields->len);
	buf_puts(&line, "}\n");
	if (S.verbose)
		fprintf(stderr, "luo-sim: %s", line.p);
	uint64_t slot = events_seq % EVENTS_MAX;
	free(events[slot]);
	events[slot] = line.p;
	events_seq++;
	if (events_seq - events_first > EVENTS_MAX)
		events_first = events_seq - EVENTS_MAX;
	buf_free(fields);
}

void events_text(struct buf *out)
{
	for (uint64_t seq = events_first; seq < events_seq; seq++)
		buf_puts(out, events[seq % EVENTS_MAX]);
}

void events_clear(void)
{
	for (uint64_t seq = events_first; seq < events_seq; seq++) {
		free(events[seq % EVENTS_MAX]);
		events[seq % EVENTS_MAX] = NULL;
	}
	events_first = events_seq;
}

static void log_warning(int32_t device, const char *message)
{
	struct buf f = {0};
	buf_puts(&f, "\"type\":\"warning\",");
	if (device >= 0) {
		buf_puts(&f, "\"device\":");
		buf_json(&f, S.devices[device].path, strlen(S.devices[device].path));
		buf_puts(&f, ",");
	}
	buf_puts(&f, "\"message\":");
	buf_json(&f, message, strlen(message));
	event_log(&f);
}

static void log_device(int event, int32_t device, const char *via, int err)
{
	struct buf f = {0};
	buf_printf(&f, "\"type\":\"device\",\"event\":\"%s\",\"device\":", event_names[event]);
	buf_json(&f, S.devices[device].path, strlen(S.devices[device].path));
	if (via)
		buf_printf(&f, ",\"via\":\"%s\"", via);
	if (err)
		buf_printf(&f, ",\"errno\":\"%s\"", errno_name(err));
	event_log(&f);
}

/* ---- subsystems and failure injection ------------------------------------- */
struct subsystem {
	char *name;
	int priority;
	bool devices;
};
static struct subsystem *chain;
static size_t nchain;

struct injection {
	int event;
	int subsystem;   /* -1 for a device */
	int32_t device;  /* -1 for a subsystem */
	int step;        /* for a device: STEP_FIRST, STEP_DRIVER or STEP_BUS */
	int err;
};
static struct injection *injections;
static size_t ninjections;

int luo_subsystem_find(const char *name)
{
	for (size_t i = 0; i < nchain; i++)
		if (strcmp(chain[i].name, name) == 0)
			return (int)i;
	return -1;
}

int luo_init(const char *spec, char *err, size_t errlen)
{
	/* "name:before|with|after,…"; "devices" is the device layer (WITH_DEVICES). */
	char *copy = strdup(spec), *save = NULL;
	bool have_devices = false;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		int priority = 1;
		if (colon) {
			*colon = '\0';
			if (strcmp(colon + 1, "before") == 0)
				priority = 0;
			else if (strcmp(colon + 1, "with") == 0)
				priority = 1;
			else if (strcmp(colon + 1, "after") == 0)
				priority = 2;
			else {
				snprintf(err, errlen, "subsystem %s: priority \"%s\" is not before, with "
					 "or after", tok, colon + 1);
				free(copy);
				return -EINVAL;
			}
		}
		if (!*tok || luo_subsystem_find(tok) >= 0) {
			snprintf(err, errlen, "subsystem name \"%s\" is empty or given twice", tok);
			free(copy);
			return -EINVAL;
		}
		bool devices = strcmp(tok, "devices") == 0;
		if (devices) {
			have_devices = true;
			priority = 1;
		}
		/* blocking_notifier_chain_register: after every entry of >= priority. */
		size_t at = 0;
		while (at < nchain && chain[at].priority >= priority)
			at++;
		chain = realloc(chain, (nchain + 1) * sizeof *chain);
		memmove(&chain[at + 1], &chain[at], (nchain - at) * sizeof *chain);
		chain[at] = (struct subsystem){.name = strdup(tok), .priority = priority,
					       .devices = devices};
		nchain++;
	}
	free(copy);
	if (!have_devices) {
		snprintf(err, errlen, "the subsystem list must include \"devices\" (the device layer)");
		return -EINVAL;
	}
	return 0;
}

int luo_inject(int event, int subsystem, int32_t device, int step, int err)
{
	injections = realloc(injections, (ninjections + 1) * sizeof *injections);
	injections[ninjections++] = (struct injection){event, subsystem, device, step, err};
	return 0;
}

void luo_clear_injections(void)
{
	ninjections = 0;
	S.eagain = 0;
}

/* Consumes a pending failure for this callback: -errno, or 0. A device's
 * STEP_FIRST failure hits its first callback (the driver's, else the bus's). */
static int injected(int event, int subsystem, int32_t device, int step, bool first)
{
	for (size_t i = 0; i < ninjections; i++) {
		struct injection *in = &injections[i];
		if (in->event == event && in->subsystem == subsystem && in->device == device &&
		    (device < 0 || in->step == step || (in->step == STEP_FIRST && first))) {
			int err = in->err;
			memmove(in, in + 1, (ninjections - i - 1) * sizeof *in);
			ninjections--;
			return -err;
		}
	}
	return 0;
}

/* ---- the state ------------------------------------------------------------ */
static void set_state(int state)
{
	struct buf f = {0};
	buf_printf(&f, "\"type\":\"state\",\"from\":\"%s\",\"to\":\"%s\",\"notified\":%s",
		   state_names[S.state], state_names[state], S.notify ? "true" : "false");
	event_log(&f);
	S.state = state;
	/* RFC v1: sysfs_notify(kernel_kobj, NULL, "state") names /sys/kernel/state,
	 * which does not exist; S.notify = true is the fixed behaviour. */
	if (S.notify)
		poll_notify_state();
}

/* down_write_killable / down_read_killable: true when "interrupted". */
static bool lock_interrupted(const char *who)
{
	if (!S.eagain)
		return false;
	S.eagain--;
	char message[128];
	snprintf(message, sizeof message, "%s, change state canceled by user", who);
	log_warning(-1, message);
	return true;
}

/* ---- the device layer ------------------------------------------------------ */
static int32_t *plist;
static uint32_t plen, pcap;

static void plist_push(int32_t d)
{
	if (plen == pcap) {
		pcap = pcap ? pcap * 2 : 64;
		plist = realloc(plist, pcap * sizeof *plist);
	}
	plist[plen++] = d;
}

struct sort_item {
	int32_t device;
	int32_t depth;
	uint32_t order;
};

static int deepest_first(const void *a, const void *b)
{
	const struct sort_item *x = a, *y = b;
	if (x->depth != y->depth)
		return x->depth > y->depth ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* list_sort by dev_depth_cmp (stable, deepest first). */
static void plist_sort(void)
{
	struct sort_item *items = malloc((plen ? plen : 1) * sizeof *items);
	for (uint32_t i = 0; i < plen; i++)
		items[i] = (struct sort_item){plist[i], S.devices[plist[i]].lu_depth, i};
	qsort(items, plen, sizeof *items, deepest_first);
	for (uint32_t i = 0; i < plen; i++)
		plist[i] = items[i].device;
	free(items);
}

static void plist_destroy(void)
{
	for (uint32_t i = 0; i < plen; i++)
		S.devices[plist[i]].lu_depth = 0;
	plen = 0;
}

static void find_ancestors_and_depth(int32_t current)
{
	if (S.devices[current].lu_depth)
		return;
	int depth = device_depth(current);
	for (int32_t d = current; d >= 0; d = S.devices[d].parent) {
		if (S.devices[d].lu_depth)
			break;
		S.devices[d].lu_depth = depth--;
		plist_push(d);
	}
}

static void build_preserve_list(void)
{
	for (uint32_t i = 0; i < S.ndevices; i++)
		if (!S.devices[i].removed && S.devices[i].requested)
			find_ancestors_and_depth((int32_t)i);
	plist_sort();
}

static bool has_driver_cb(const struct device *d)
{
	if (!d->driver)
		return false;
	if (!d->driver_support) {
		log_warning((int32_t)(d - S.devices), "WARN_ON: driver has no liveupdate callbacks");
		return false;
	}
	return true;
}

static bool has_bus_cb(const struct device *d)
{
	if (!d->on_bus)
		return false;
	if (!d->bus_support) {
		log_warning((int32_t)(d - S.devices), "WARN_ON: bus has no liveupdate callbacks");
		return false;
	}
	return true;
}

/* __dev_liveupdate_cancel: the entries before position `before`, in reverse. */
static void cancel_before(uint32_t before)
{
	for (uint32_t i = before; i-- > 0;) {
		struct device *d = &S.devices[plist[i]];
		has_bus_cb(d);
		has_driver_cb(d);
		d->preserved = false;
		log_device(EV_CANCEL, plist[i], NULL, 0);
	}
	plist_destroy();
}

static int reboot_prepare(int event)
{
	for (uint32_t i = 0; i < plen; i++) {
		int32_t index = plist[i];
		struct device *d = &S.devices[index];
		int rv = 0;
		bool driver = has_driver_cb(d);
		if (driver)
			rv = injected(event, -1, index, STEP_DRIVER, true);
		if (rv) {
			log_device(event, index, "driver", rv);
			log_warning(index, "driver live update failed");
			cancel_before(i);
			return rv;
		}
		if (has_bus_cb(d))
			rv = injected(event, -1, index, STEP_BUS, !driver);
		if (rv) {
			log_device(event, index, "bus", rv);
			log_warning(index, "bus live update failed");
			log_device(EV_CANCEL, index, "driver", 0);
			cancel_before(i);
			return rv;
		}
		d->preserved = true;
		log_device(event, index, NULL, 0);
	}
	return 0;
}

static void device_finish(void)
{
	plen = 0;
	for (uint32_t i = 0; i < S.ndevices; i++) {
		struct device *d = &S.devices[i];
		if (d->removed || !d->preserved)
			continue;
		d->lu_depth = device_depth((int32_t)i);
		plist_push((int32_t)i);
	}
	plist_sort();
	for (uint32_t i = 0; i < plen; i++) {
		struct device *d = &S.devices[plist[i]];
		if (!d->reclaimed)
			log_warning(plist[i], "Device was not reclaimed during live update");
		has_driver_cb(d);
		has_bus_cb(d);
		log_device(EV_FINISH, plist[i], NULL, 0);
		d->reclaimed = false;
		d->preserved = false;
		d->lu_depth = 0;
	}
	plen = 0;
}

static int device_layer(int event)
{
	switch (event) {
	case EV_PREPARE:
		build_preserve_list();
		return reboot_prepare(EV_PREPARE);
	case EV_REBOOT: {
		int rv = reboot_prepare(EV_REBOOT);
		if (!rv)
			plist_destroy();
		return rv;
	}
	case EV_FINISH:
		device_finish();
		return 0;
	default:
		cancel_before(plen);
		return 0;
	}
}

/* ---- the notifier chain ------------------------------------------------------ */
static int call_subsystem(size_t i, int event)
{
	int err = 0;
	if (chain[i].devices)
		err = device_layer(event);
	else if (event == EV_PREPARE || event == EV_REBOOT)
		err = injected(event, (int)i, -1, STEP_FIRST, true);
	struct buf f = {0};
	buf_printf(&f, "\"type\":\"callback\",\"event\":\"%s\",\"subsystem\":", event_names[event]);
	buf_json(&f, chain[i].name, strlen(chain[i].name));
	if (err)
		buf_printf(&f, ",\"errno\":\"%s\"", errno_name(err));
	event_log(&f);
	return err;
}

static int luo_notify(int event)
{
	int ret = 0;
	if (event == EV_PREPARE) {
		size_t nr = 0;
		for (size_t i = 0; i < nchain && !ret; i++, nr++)
			ret = call_subsystem(i, EV_PREPARE);
		if (ret)
			for (size_t i = 0; i + 1 < nr; i++)
				call_subsystem(i, EV_CANCEL);
		return ret;
	}
	if (event == EV_REBOOT) {
		for (size_t i = 0; i < nchain && !ret; i++)
			ret = call_subsystem(i, EV_REBOOT);
		if (ret)
			luo_notify(EV_CANCEL);
		return ret;
	}
	for (size_t i = 0; i < nchain; i++)
		call_subsystem(i, event);
	return 0;
}

static void cant_switch(int to)
{
	char message[96];
	snprintf(message, sizeof message, "Can't switch to [%s] from [%s] state", state_names[to],
		 state_names[S.state]);
	log_warning(-1, message);
}

static int luo_prepare(void)
{
	if (lock_interrupted("luo_prepare"))
		return -EAGAIN;
	if (S.state != ST_NORMAL) {
		cant_switch(ST_PREPARED);
		return -EINVAL;
	}
	int ret = luo_notify(EV_PREPARE);
	if (!ret)
		set_state(ST_PREPARED);
	return ret;
}

static int luo_cancel(void)
{
	if (lock_interrupted("luo_cancel"))
		return -EAGAIN;
	if (S.state != ST_PREPARED) {
		cant_switch(ST_NORMAL);
		return -EINVAL;
	}
	luo_notify(EV_CANCEL);
	set_state(ST_NORMAL);
	return 0;
}

static int luo_finish(void)
{
	if (lock_interrupted("luo_finish"))
		return -EAGAIN;
	if (S.state != ST_UPDATED) {
		cant_switch(ST_NORMAL);
		return -EINVAL;
	}
	luo_notify(EV_FINISH);
	set_state(ST_NORMAL);
	return 0;
}

int luo_reboot(void)
{
	if (S.state != ST_PREPARED)
		return 0;
	if (lock_interrupted("liveupdate_reboot"))
		return -EAGAIN;
	int ret = luo_notify(EV_REBOOT);
	if (ret < 0)
		set_state(ST_NORMAL);
	/* else: the KHO node liveupdate_orchestrator with version 1.0 is added. */
	return ret;
}

static void new_boot_id(void)
{
	unsigned char b[16];
	if (getrandom(b, sizeof b, 0) != sizeof b) {
		for (size_t i = 0; i < sizeof b; i++)
			b[i] = (unsigned char)rand();
	}
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(S.boot_id, sizeof S.boot_id,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

/* The next kernel boots: a live update (state updated, the preserved set
 * carried over), a plain kexec or a cold boot (state normal, nothing kept). */
void luo_boot(enum boot_kind kind)
{
	static const char *const kinds[] = {"live", "plain", "cold"};
	plist_destroy();
	for (uint32_t i = 0; i < S.ndevices; i++) {
		struct device *d = &S.devices[i];
		d->requested = false;
		d->reclaimed = false;
		d->lu_depth = 0;
		if (kind != BOOT_LIVE)
			d->preserved = false;
	}
	S.boot++;
	new_boot_id();
	/* luo_startup runs before sysfs exists: no notification. Files opened in the
	 * previous boot are dead (ENODEV); their pollers are woken. */
	S.state = kind == BOOT_LIVE ? ST_UPDATED : ST_NORMAL;
	poll_notify_all();
	struct buf f = {0};
	buf_printf(&f, "\"type\":\"boot\",\"kind\":\"%s\",\"state\":\"%s\",\"bootId\":\"%s\"",
		   kinds[kind], state_names[S.state], S.boot_id);
	event_log(&f);
}

/* ---- attributes ---------------------------------------------------------------- */
static bool liveupdate_possible(int32_t index)
{
	for (int32_t i = index; i >= 0; i = S.devices[i].parent) {
		const struct device *d = &S.devices[i];
		char message[512];
		if (!d->driver_support) {
			snprintf(message, sizeof message, "driver[%s] no liveupdate callback",
				 d->driver ? d->driver : "");
			log_warning(i, message);
			return false;
		}
		if (!d->bus_support) {
			snprintf(message, sizeof message, "bus[%s] no liveupdate callback",
				 d->subsystem ? d->subsystem : "");
			log_warning(i, message);
			return false;
		}
	}
	return true;
}

static ssize_t requested_store(int32_t index, const char *buf, size_t count)
{
	struct device *d = &S.devices[index];
	long val;
	if (kstrtol(buf, 0, &val) < 0)
		return -EINVAL;
	if (val != 1 && val != 0)
		return -EINVAL;
	if (d->requested == !!val)
		return (ssize_t)count;
	if (lock_interrupted("requested_store")) {
		log_warning(index, "Changing requested state Canceled by user");
		return -EAGAIN;
	}
	if (S.state != ST_NORMAL) {
		log_warning(index, "Participation can be requested only in [normal] state");
		return -EINVAL;
	}
	if (!val) {
		d->requested = false;
		return (ssize_t)count;
	}
	if (!liveupdate_possible(index))
		return -EINVAL;
	d->requested = true;
	return (ssize_t)count;
}

static ssize_t prepare_store(const char *buf, size_t count)
{
	long val;
	if (kstrtol(buf, 0, &val) < 0)
		return -EINVAL;
	if (val != 1 && val != 0)
		return -EINVAL;
	int ret = val ? luo_prepare() : luo_cancel();
	return ret ? ret : (ssize_t)count;
}

static ssize_t finish_store(const char *buf, size_t count)
{
	long val;
	if (kstrtol(buf, 0, &val) < 0)
		return -EINVAL;
	if (val != 1)
		return -EINVAL;
	int ret = luo_finish();
	return ret ? ret : (ssize_t)count;
}

/* kobject_synth_uevent: "ACTION [UUID [KEY=VALUE ...]]". */
static ssize_t uevent_store(int32_t index, const char *buf, size_t count)
{
	static const char *const actions[] = {"add",    "remove", "change", "move",
					      "online", "offline", "bind",  "unbind"};
	size_t n = strcspn(buf, " \n");
	for (size_t i = 0; i < sizeof actions / sizeof *actions; i++) {
		if (strlen(actions[i]) == n && strncmp(buf, actions[i], n) == 0) {
			struct buf f = {0};
			buf_printf(&f, "\"type\":\"uevent\",\"action\":\"%s\",\"device\":", actions[i]);
			buf_json(&f, S.devices[index].path, strlen(S.devices[index].path));
			event_log(&f);
			return (ssize_t)count;
		}
	}
	return -EINVAL;
}

ssize_t attr_store(uint64_t ino, const char *buf, size_t count)
{
	ssize_t ret;
	switch (INO_KIND(ino)) {
	case K_REQUESTED:
		ret = requested_store((int32_t)INO_ID(ino), buf, count);
		break;
	case K_UEVENT:
		ret = uevent_store((int32_t)INO_ID(ino), buf, count);
		break;
	case K_GLOBAL:
		if (INO_ID(ino) == G_PREPARE)
			ret = prepare_store(buf, count);
		else if (INO_ID(ino) == G_FINISH)
			ret = finish_store(buf, count);
		else
			ret = -EIO;
		break;
	default:
		ret = -EIO; /* no store method: kobj_attr_store / dev_attr_store */
	}
	struct buf f = {0};
	buf_puts(&f, "\"type\":\"write\",\"file\":");
	struct buf path = {0};
	node_path(ino, &path);
	buf_json(&f, path.p, path.len);
	buf_free(&path);
	buf_puts(&f, ",\"value\":");
	buf_json(&f, buf, count < 64 ? count : 64);
	if (ret < 0)
		buf_printf(&f, ",\"errno\":\"%s\"", errno_name((int)ret));
	event_log(&f);
	return ret;
}

int attr_show(uint64_t ino, struct buf *out)
{
	const struct device *d = INO_KIND(ino) == K_GLOBAL ? NULL : &S.devices[INO_ID(ino)];
	switch (INO_KIND(ino)) {
	case K_UEVENT: {
		const char *p = d->props;
		for (uint32_t i = 0; i < d->nprops; i++) {
			size_t n = strlen(p);
			buf_put(out, p, n);
			buf_put(out, "\n", 1);
			p += n + 1;
		}
		return 0;
	}
	case K_REQUESTED:
		buf_printf(out, "%d\n", d->requested);
		return 0;
	case K_PRESERVED:
		buf_printf(out, "%d\n", d->preserved);
		return 0;
	case K_RECLAIMED:
		buf_printf(out, "%d\n", d->reclaimed);
		return 0;
	case K_GLOBAL:
		switch (INO_ID(ino)) {
		case G_STATE:
			buf_printf(out, "%s\n", state_names[S.state]);
			return 0;
		case G_EVENTS:
			events_text(out);
			return 0;
		case G_STATUS:
			luo_status(out);
			buf_puts(out, "\n");
			return 0;
		case G_BOOT_ID:
			buf_printf(out, "%s\n", S.boot_id);
			return 0;
		default:
			return -EIO; /* no show method */
		}
	default:
		return -EIO;
	}
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

void luo_status(struct buf *out)
{
	buf_printf(out,
		   "{\"boot\":%llu,\"bootId\":\"%s\",\"state\":\"%s\",\"enabled\":%s,"
		   "\"notify\":%s,\"devices\":%u,\"removed\":%u,\"eagain\":%llu,\"rssKib\":%ld,"
		   "\"pollers\":%u,\"wakeups\":%llu,\"events\":%llu,\"eventsKept\":%llu,\"subsystems\":[",
		   (unsigned long long)S.boot, S.boot_id, state_names[S.state],
		   S.enabled ? "true" : "false", S.notify ? "true" : "false", S.ndevices - S.nremoved,
		   S.nremoved, (unsigned long long)S.eagain, rss_kib(), poll_waiters(),
		   (unsigned long long)poll_wakeups(),
		   (unsigned long long)events_seq, (unsigned long long)(events_seq - events_first));
	for (size_t i = 0; i < nchain; i++) {
		buf_puts(out, i ? "," : "");
		buf_json(out, chain[i].name, strlen(chain[i].name));
	}
	buf_puts(out, "],\"failures\":[");
	for (size_t i = 0; i < ninjections; i++) {
		const struct injection *in = &injections[i];
		buf_printf(out, "%s{\"event\":\"%s\",\"errno\":\"%s\",\"target\":", i ? "," : "",
			   event_names[in->event], errno_name(in->err));
		if (in->device >= 0) {
			static const char *const steps[] = {"device", "driver", "bus"};
			struct buf t = {0};
			buf_printf(&t, "%s:%s", steps[in->step], S.devices[in->device].path);
			buf_json(out, t.p, t.len);
			buf_free(&t);
		} else {
			buf_json(out, chain[in->subsystem].name, strlen(chain[in->subsystem].name));
		}
		buf_puts(out, "}");
	}
	buf_puts(out, "]}");
}
