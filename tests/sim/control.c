/*
 * luo-sim: the test-only control channel, .luo-sim/control at the top of the
 * mount (outside every path the LUO ABI defines). One command per write(2);
 * the write fails with the command's errno when it is refused, and a read(2)
 * from the same open file returns the reply, one JSON object:
 * {"ok":true,...} or {"ok":false,"errno":"ENOENT","message":"..."}.
 *
 *   kexec [nofallback]        reboot(LINUX_REBOOT_CMD_KEXEC), then the next boot
 *   reboot                    cold reboot
 *   fail PREPARE|REBOOT ERRNO TARGET
 *                             the next such callback of TARGET fails with ERRNO;
 *                             TARGET: a subsystem name, device:PATH (the device's
 *                             first callback), driver:PATH or bus:PATH
 *   eagain N                  the next N state-lock acquisitions are interrupted
 *   reclaim PATH | unreclaim PATH
 *   remove PATH               the device and everything below it vanish
 *   add LINE                  a device, as a tab-separated data-file line
 *   notify on|off             state-change wake-ups (off: RFC v1's bug)
 *   clear-events | clear-failures | status
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "luo_sim.h"

static int fail(struct buf *reply, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct buf *reply, int err, const char *fmt, ...)
{
	char message[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	reply->len = 0;
	buf_printf(reply, "{\"ok\":false,\"errno\":\"%s\",\"message\":", errno_name(err));
	buf_json(reply, message, strlen(message));
	buf_puts(reply, "}\n");
	return -err;
}

static void boot_fields(struct buf *reply)
{
	buf_printf(reply, "\"boot\":%llu,\"bootId\":\"%s\",\"state\":\"%s\"",
		   (unsigned long long)S.boot, S.boot_id, state_names[S.state]);
}

static int32_t find_device(struct buf *reply, const char *path)
{
	int32_t index = device_find(path);
	if (index < 0)
		fail(reply, ENOENT, "no device %s (a path below devices/)", path);
	return index;
}

static void log_simple(const char *type, const char *device, int value)
{
	struct buf f = {0};
	buf_printf(&f, "\"type\":\"%s\",\"device\":", type);
	buf_json(&f, device, strlen(device));
	if (value >= 0)
		buf_printf(&f, ",\"value\":%d", value);
	event_log(&f);
}

static int cmd_kexec(const char *arg, struct buf *reply)
{
	bool fallback = true;
	if (*arg) {
		if (strcmp(arg, "nofallback") != 0)
			return fail(reply, EINVAL, "kexec takes no argument or \"nofallback\", not \"%s\"",
				    arg);
		fallback = false;
	}
	bool prepared = S.state == ST_PREPARED;
	int ret = luo_reboot();
	struct buf f = {0};
	buf_printf(&f, "\"type\":\"reboot\",\"command\":\"kexec\",\"result\":\"%s\"",
		   ret ? errno_name(ret) : "ok");
	event_log(&f);
	if (!ret) {
		luo_boot(prepared ? BOOT_LIVE : BOOT_PLAIN);
		buf_printf(reply, "{\"ok\":true,\"reboot\":\"%s\",", prepared ? "live" : "plain");
	} else {
		buf_printf(reply, "{\"ok\":true,\"reboot\":\"failed\",\"errno\":\"%s\",\"fallback\":\"%s\",",
			   errno_name(ret), fallback ? "cold" : "none");
		if (fallback)
			luo_boot(BOOT_COLD);
	}
	boot_fields(reply);
	buf_puts(reply, "}\n");
	return 0;
}

static int cmd_fail(char *arg, struct buf *reply)
{
	char *save = NULL;
	char *event = strtok_r(arg, " ", &save);
	char *errname = strtok_r(NULL, " ", &save);
	char *target = save;
	if (!event || !errname || !target || !*target)
		return fail(reply, EINVAL, "usage: fail PREPARE|REBOOT ERRNO TARGET");
	int ev;
	if (strcasecmp(event, "PREPARE") == 0)
		ev = EV_PREPARE;
	else if (strcasecmp(event, "REBOOT") == 0)
		ev = EV_REBOOT;
	else
		return fail(reply, EINVAL, "only PREPARE and REBOOT callbacks can fail, not \"%s\"",
			    event);
	int err = errno_parse(errname);
	if (!err)
		return fail(reply, EINVAL, "\"%s\" is not an errno name or number", errname);
	static const char *const prefixes[] = {"device:", "driver:", "bus:"};
	for (int step = STEP_FIRST; step <= STEP_BUS; step++) {
		size_t n = strlen(prefixes[step]);
		if (strncmp(target, prefixes[step], n) != 0)
			continue;
		int32_t index = find_device(reply, target + n);
		if (index < 0)
			return -ENOENT;
		const struct device *d = &S.devices[index];
		bool driver = d->driver != NULL, bus = d->on_bus;
		if ((step == STEP_FIRST && !driver && !bus) || (step == STEP_DRIVER && !driver) ||
		    (step == STEP_BUS && !bus))
			return fail(reply, EINVAL, "device %s has no %s callback to fail", d->path,
				    step == STEP_DRIVER ? "driver" : step == STEP_BUS ? "bus"
										: "driver or bus");
		luo_inject(ev, -1, index, step, err);
		buf_puts(reply, "{\"ok\":true}\n");
		return 0;
	}
	if (strcmp(target, "devices") == 0)
		return fail(reply, EINVAL, "the device layer fails through a device: name "
			    "device:PATH, driver:PATH or bus:PATH");
	int sub = luo_subsystem_find(target);
	if (sub < 0)
		return fail(reply, ENOENT, "no subsystem \"%s\"", target);
	luo_inject(ev, sub, -1, STEP_FIRST, err);
	buf_puts(reply, "{\"ok\":true}\n");
	return 0;
}

int control_command(const char *data, size_t len, struct buf *reply)
{
	char *line = strndup(data, len);
	if (!line)
		return -ENOMEM;
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
		line[--n] = '\0';
	int ret = 0;
	if (strchr(line, '\n')) {
		ret = fail(reply, EINVAL, "one command per write");
		goto out;
	}
	if (strcmp(line, "status") != 0) { /* read-only: keep polling loops out of the log */
		struct buf f = {0};
		buf_puts(&f, "\"type\":\"control\",\"command\":");
		buf_json(&f, line, n);
		event_log(&f);
	}
	char *arg = line + strcspn(line, " ");
	if (*arg)
		*arg++ = '\0';
	const char *cmd = line;

	if (strcmp(cmd, "kexec") == 0) {
		ret = cmd_kexec(arg, reply);
	} else if (strcmp(cmd, "reboot") == 0) {
		luo_boot(BOOT_COLD);
		buf_puts(reply, "{\"ok\":true,\"reboot\":\"cold\",");
		boot_fields(reply);
		buf_puts(reply, "}\n");
	} else if (strcmp(cmd, "fail") == 0) {
		ret = cmd_fail(arg, reply);
	} else if (strcmp(cmd, "eagain") == 0) {
		char *end;
		long count = strtol(arg, &end, 10);
		if (!*arg || *end || count < 0)
			ret = fail(reply, EINVAL, "usage: eagain N (N >= 0)");
		else {
			S.eagain = (uint64_t)count;
			buf_puts(reply, "{\"ok\":true}\n");
		}
	} else if (strcmp(cmd, "reclaim") == 0 || strcmp(cmd, "unreclaim") == 0) {
		int32_t index = find_device(reply, arg);
		if (index < 0) {
			ret = -ENOENT;
		} else {
			S.devices[index].reclaimed = cmd[0] == 'r';
			log_simple("reclaimed", arg, cmd[0] == 'r');
			buf_puts(reply, "{\"ok\":true}\n");
		}
	} else if (strcmp(cmd, "remove") == 0) {
		int32_t index = find_device(reply, arg);
		if (index < 0) {
			ret = -ENOENT;
		} else {
			uint32_t before = S.nremoved;
			log_simple("remove", arg, -1);
			device_remove(index);
			buf_printf(reply, "{\"ok\":true,\"removed\":%u}\n", S.nremoved - before);
		}
	} else if (strcmp(cmd, "add") == 0) {
		char *kept = malloc(strlen(arg) + 9); /* devices point into it for ever */
		if (!kept) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(kept, "devices/", 8);
		memcpy(kept + 8, arg, strlen(arg) + 1);
		char err[1024];
		if (tree_add_line(kept, 0, err, sizeof err)) {
			free(kept);
			ret = fail(reply, EINVAL, "%s", strncmp(err, "line 0: ", 8) ? err : err + 8);
		} else {
			const struct device *d = &S.devices[S.ndevices - 1];
			log_simple("add", d->path, -1);
			buf_puts(reply, "{\"ok\":true}\n");
		}
	} else if (strcmp(cmd, "notify") == 0) {
		if (strcmp(arg, "on") && strcmp(arg, "off"))
			ret = fail(reply, EINVAL, "usage: notify on|off");
		else {
			S.notify = strcmp(arg, "on") == 0;
			buf_puts(reply, "{\"ok\":true}\n");
		}
	} else if (strcmp(cmd, "clear-events") == 0) {
		events_clear();
		buf_puts(reply, "{\"ok\":true}\n");
	} else if (strcmp(cmd, "clear-failures") == 0) {
		luo_clear_injections();
		buf_puts(reply, "{\"ok\":true}\n");
	} else if (strcmp(cmd, "status") == 0) {
		buf_puts(reply, "{\"ok\":true,\"status\":");
		luo_status(reply);
		buf_puts(reply, "}\n");
	} else {
		ret = fail(reply, EINVAL,
			   "unknown command \"%s\"; commands: kexec [nofallback], reboot, fail "
			   "PREPARE|REBOOT ERRNO TARGET, eagain N, reclaim PATH, unreclaim PATH, "
			   "remove PATH, add LINE, notify on|off, clear-events, clear-failures, status",
			   cmd);
	}
out:
	free(line);
	return ret;
}
