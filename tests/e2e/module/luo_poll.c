// SPDX-License-Identifier: GPL-2.0
/*
 * luo-poll FILE TIMEOUT_MS READY_FILE: waits for a sysfs attribute to change the
 * way a watcher does (read to arm, poll(2) for POLLPRI|POLLERR, re-read from
 * offset 0). Writes "armed" to READY_FILE once armed, then prints
 * "woken <content>" and exits 0 on a wake-up, or "timeout <content>" and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void read_all(int fd, char *buf, size_t size)
{
	ssize_t n = pread(fd, buf, size - 1, 0);

	if (n < 0) {
		perror("pread");
		exit(2);
	}
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

int main(int argc, char **argv)
{
	char buf[4096];
	struct pollfd pfd;
	FILE *ready;
	int ret;

	if (argc != 4) {
		fprintf(stderr, "usage: luo-poll FILE TIMEOUT_MS READY_FILE\n");
		return 2;
	}
	pfd.fd = open(argv[1], O_RDONLY);
	if (pfd.fd < 0) {
		perror(argv[1]);
		return 2;
	}
	pfd.events = POLLPRI | POLLERR;
	read_all(pfd.fd, buf, sizeof(buf));
	ready = fopen(argv[3], "w");
	if (!ready || fputs("armed\n", ready) < 0 || fclose(ready)) {
		perror(argv[3]);
		return 2;
	}
	do
		ret = poll(&pfd, 1, atoi(argv[2]));
	while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		perror("poll");
		return 2;
	}
	read_all(pfd.fd, buf, sizeof(buf));
	printf("%s %s\n", ret > 0 ? "woken" : "timeout", buf);
	return ret > 0 ? 0 : 1;
}
