/*
 * luo-sim: a simulated Live Update Orchestrator (RFC v1) kernel, served as a
 * FUSE filesystem laid out like /sys. Runs in the foreground until SIGTERM,
 * SIGINT or SIGHUP, then unmounts.
 *
 * Usage: luo-sim [OPTIONS] TREE_FILE MOUNTPOINT
 *   --notify=on|off      state-change poll wake-ups (off: RFC v1's missing
 *                        notification); default on
 *   --disabled           LUO off (no kernel/liveupdate, no device liveupdate/)
 *   --subsystems=LIST    registered subsystems in registration order, each
 *                        NAME:before|with|after; "devices" is the device layer
 *                        (default kvm:before,iommu:before,devices:with,interrupts:after)
 *   --buses=LIST         subsystems that are buses (default pci,platform,usb,virtio)
 *   --verbose            copy every event to standard error
 *   --exit-with-stdin    also stop when standard input reaches end of file (the
 *                        harness holds a pipe: if the test process dies, so does
 *                        the simulator)
 *
 * Once mounted it prints one JSON line on standard output:
 *   {"ready":true,"mountpoint":...,"devices":N,"loadMs":T,"rssKib":K,"pid":P}
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "luo_sim.h"

struct sim S;

static void usage(const char *message)
{
	fprintf(stderr,
		"luo-sim: %s\n"
		"usage: luo-sim [--notify=on|off] [--disabled] [--subsystems=LIST] [--buses=LIST] "
		"[--verbose] [--exit-with-stdin] TREE_FILE MOUNTPOINT\n",
		message);
	exit(2);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
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

/* fuse_session_loop, also watching standard input for end of file. */
static int session_loop(struct fuse_session *se, bool watch_stdin)
{
	if (!watch_stdin)
		return fuse_session_loop(se);
	struct fuse_buf fbuf = {.mem = NULL};
	int res = 0;
	while (!fuse_session_exited(se)) {
		struct pollfd fds[2] = {
			{.fd = fuse_session_fd(se), .events = POLLIN},
			{.fd = STDIN_FILENO, .events = POLLIN},
		};
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			res = -errno;
			break;
		}
		if (fds[1].revents) {
			char byte;
			if (read(STDIN_FILENO, &byte, 1) <= 0) {
				fuse_session_exit(se);
				break;
			}
		}
		if (fds[0].revents & POLLIN) {
			res = fuse_session_receive_buf(se, &fbuf);
			if (res == -EINTR)
				continue;
			if (res <= 0)
				break;
			fuse_session_process_buf(se, &fbuf);
			res = 0;
		} else if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			break; /* unmounted from outside */
		}
	}
	free(fbuf.mem);
	return res < 0 ? res : 0;
}

int main(int argc, char **argv)
{
	bool watch_stdin = false;
	const char *subsystems = "kvm:before,iommu:before,devices:with,interrupts:after";
	const char *buses = "pci,platform,usb,virtio";
	const char *positional[2];
	int npositional = 0;
	S.enabled = true;
	S.notify = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--notify=on") == 0)
			S.notify = true;
		else if (strcmp(a, "--notify=off") == 0)
			S.notify = false;
		else if (strcmp(a, "--disabled") == 0)
			S.enabled = false;
		else if (strcmp(a, "--verbose") == 0)
			S.verbose = true;
		else if (strcmp(a, "--exit-with-stdin") == 0)
			watch_stdin = true;
		else if (strncmp(a, "--subsystems=", 13) == 0)
			subsystems = a + 13;
		else if (strncmp(a, "--buses=", 8) == 0)
			buses = a + 8;
		else if (a[0] == '-' && a[1] == '-')
			usage("unknown option");
		else if (npositional < 2)
			positional[npositional++] = a;
		else
			usage("too many arguments");
	}
	if (npositional != 2)
		usage("TREE_FILE and MOUNTPOINT are required");

	char *list = strdup(buses), *save = NULL;
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		S.buses = realloc(S.buses, (S.nbuses + 1) * sizeof *S.buses);
		S.buses[S.nbuses++] = tok;
	}

	char err[1024];
	double t0 = now_ms();
	S.start_time = time(NULL);
	S.state_event = 1;
	if (luo_init(subsystems, err, sizeof err) || tree_init(err, sizeof err) ||
	    tree_load(positional[0], err, sizeof err) || tree_finish_load(err, sizeof err)) {
		fprintf(stderr, "luo-sim: %s\n", err);
		return 1;
	}
	luo_boot(BOOT_COLD);
	double load_ms = now_ms() - t0;

	char *fuse_argv[] = {argv[0], "-o",
			     "fsname=luo-sim,subtype=luo-sim,default_permissions,allow_other", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
	S.se = fuse_session_new(&args, &luo_ops, sizeof luo_ops, NULL);
	if (!S.se) {
		fprintf(stderr, "luo-sim: cannot create the FUSE session\n");
		return 1;
	}
	if (fuse_set_signal_handlers(S.se) != 0) {
		fprintf(stderr, "luo-sim: cannot install signal handlers\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (fuse_session_mount(S.se, positional[1]) != 0) {
		fprintf(stderr, "luo-sim: cannot mount on %s\n", positional[1]);
		return 1;
	}
	struct buf ready = {0};
	buf_puts(&ready, "{\"ready\":true,\"mountpoint\":");
	buf_json(&ready, positional[1], strlen(positional[1]));
	buf_printf(&ready, ",\"devices\":%u,\"loadMs\":%.1f,\"rssKib\":%ld,\"pid\":%d}\n",
		   S.ndevices, load_ms, rss_kib(), (int)getpid());
	fputs(ready.p, stdout);
	fflush(stdout);
	buf_free(&ready);

	int ret = session_loop(S.se, watch_stdin);
	fuse_session_unmount(S.se);
	fuse_remove_signal_handlers(S.se);
	fuse_session_destroy(S.se);
	/* fuse_session_loop: 0, -errno, or the number of the signal that stopped it. */
	return ret < 0 ? 1 : 0;
}
