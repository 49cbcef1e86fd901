/*
 * luo-sim: a simulated Live Update Orchestrator (RFC v1) served as a FUSE
 * filesystem shaped like sysfs. Shared declarations of the four parts:
 *
 *   tree.c    the device tree (data file, directories, names, inode numbers)
 *   luo.c     the LUO state machine, subsystem callbacks, the device layer,
 *             the attribute stores (kstrtol parsing), the event log
 *   control.c the test-only control channel (.luo-sim/)
 *   fuse_ops.c + main.c  the FUSE low-level operations and the daemon
 *
 * Everything runs on the one FUSE session thread: no locking.
 */
#ifndef LUO_SIM_H
#define LUO_SIM_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- inode numbers ------------------------------------------------------
 * ino = (id << 4) | kind. Directories are numbered by their index in the
 * directory table, so the root directory (index 0) is FUSE's root id 1.
 * Files of a device use the device's index. Numbers never change and are
 * never reused (removed devices keep their index).
 */
enum kind {
	K_DIR = 1,
	K_UEVENT,
	K_LUDIR,
	K_REQUESTED,
	K_PRESERVED,
	K_RECLAIMED,
	K_SUBSYS_LINK,
	K_DRIVER_LINK,
	K_HOME_LINK,
	K_DEVNUM_LINK,
	K_GLOBAL,
};
#define INO(kind, id) ((((uint64_t)(id)) << 4) | (uint64_t)(kind))
#define INO_KIND(ino) ((int)((ino) & 15u))
#define INO_ID(ino) ((uint64_t)(ino) >> 4)

enum global_file {
	G_STATE,
	G_PREPARE,
	G_FINISH,
	G_CONTROL,
	G_EVENTS,
	G_STATUS,
	G_BOOT_ID,
	G_COUNT,
};

/* ---- growable text buffer ---------------------------------------------- */
struct buf {
	char *p;
	size_t len, cap;
};
void buf_put(struct buf *b, const char *s, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s (n bytes) as a JSON string literal, quotes included. */
void buf_json(struct buf *b, const char *s, size_t n);
void buf_free(struct buf *b);

/* ---- the tree ----------------------------------------------------------- */
struct entry {
	const char *name;
	uint64_t ino;
};

struct dir {
	char *path;        /* relative to the mount root, "" for the root */
	const char *name;  /* last component, points into path */
	uint32_t parent;   /* parent directory (the root's is itself) */
	uint32_t depth;    /* number of components of path */
	struct entry *entries;
	uint32_t count, cap;
	int32_t device;    /* the device whose directory this is, or -1 */
	bool removed;
};

struct device {
	const char *path;      /* below devices/ */
	const char *name;      /* last component of path */
	const char *subsystem; /* NULL when none */
	const char *driver;    /* NULL when none */
	const char *props;     /* nprops NUL-terminated KEY=VALUE strings, back to back */
	uint32_t nprops;
	uint32_t dir;          /* its directory, devices/<path> */
	int32_t parent;        /* nearest listed ancestor device, or -1 */
	uint32_t home;         /* directory holding its bus/class link, or UINT32_MAX */
	char *devnum;          /* "MAJ:MIN", or NULL */
	char devnum_kind;      /* 'c', 'b' or 0 */
	bool on_bus;           /* its subsystem is a bus (it has bus callbacks) */
	bool bus_support, driver_support;
	bool requested, preserved, reclaimed, removed;
	int32_t lu_depth;      /* non-zero while on a preserve/finish list */
};

struct sim {
	/* configuration */
	bool enabled;          /* LUO on (kernel/liveupdate and per-device dirs exist) */
	bool notify;           /* state changes wake pollers (false: RFC v1's bug) */
	bool verbose;          /* copy events to stderr */
	char **buses;          /* subsystems that are buses */
	size_t nbuses;

	/* tree */
	struct dir *dirs;
	uint32_t ndirs, capdirs;
	struct device *devices;
	uint32_t ndevices, capdevices;
	uint32_t nremoved;
	uint32_t luo_dir, control_dir;
	bool loading;          /* entries are appended during load, sorted after */

	/* LUO */
	int state;             /* enum luo_state */
	uint64_t boot;         /* boot counter, 1 for the first boot */
	char boot_id[37];
	uint64_t state_event;  /* kernfs open-node event counter of kernel/liveupdate/state */
	uint64_t eagain;       /* state-lock acquisitions still to be interrupted */

	time_t start_time;
	struct fuse_session *se;
};

extern struct sim S;

/* tree.c */
int tree_init(char *err, size_t errlen);
int tree_load(const char *file, char *err, size_t errlen);
/* Adds one data-file line; record is "devices/" followed by the line (taken
 * over, edited in place, kept for ever). */
int tree_add_line(char *record, unsigned lineno, char *err, size_t errlen);
int tree_finish_load(char *err, size_t errlen);
int32_t device_find(const char *path);
uint32_t dir_find(const char *path); /* UINT32_MAX when absent */
const struct entry *dir_lookup(const struct dir *d, const char *name);
void device_remove(int32_t index);
int device_depth(int32_t index);
/* The target of symlink ino, or -ENOENT. */
int link_target(uint64_t ino, struct buf *out);
bool node_valid(uint64_t ino);
mode_t node_mode(uint64_t ino);
/* The path of ino relative to the mount root (for events and messages). */
void node_path(uint64_t ino, struct buf *out);
bool is_bus(const char *subsystem);

/* luo.c */
enum luo_state { ST_NORMAL, ST_PREPARED, ST_UPDATED };
enum luo_event { EV_PREPARE, EV_REBOOT, EV_FINISH, EV_CANCEL };
extern const char *const state_names[];
extern const char *const event_names[];
int kstrtol(const char *s, unsigned base, long *res);
int luo_init(const char *subsystems, char *err, size_t errlen);
/* A store into a sysfs attribute: count, or -errno. buf is NUL-terminated. */
ssize_t attr_store(uint64_t ino, const char *buf, size_t count);
/* The contents of a readable attribute or control file. */
int attr_show(uint64_t ino, struct buf *out);
/* Simulated reboot(2) for kexec: 0, or -errno when the LUO refused it. */
int luo_reboot(void);
enum boot_kind { BOOT_LIVE, BOOT_PLAIN, BOOT_COLD };
void luo_boot(enum boot_kind kind);
int luo_subsystem_find(const char *name);
enum inject_step { STEP_FIRST, STEP_DRIVER, STEP_BUS };
int luo_inject(int event, int subsystem, int32_t device, int step, int err);
void luo_clear_injections(void);
void luo_status(struct buf *out);
void event_log(struct buf *json_fields); /* fields without braces, e.g. "type":"x" */
void events_text(struct buf *out);
void events_clear(void);
const char *errno_name(int err);
int errno_parse(const char *name);

/* fuse_ops.c */
extern const struct fuse_lowlevel_ops luo_ops;
void poll_notify_state(void);
void poll_notify_all(void);
/* Open files whose poll is waiting for a notification. */
unsigned poll_waiters(void);
/* Wake-ups delivered so far. */
uint64_t poll_wakeups(void);

/* control.c */
/* Runs one control command; reply is JSON; returns 0 or -errno. */
int control_command(const char *command, size_t len, struct buf *reply);

#endif
