/*
 * luo-sim: the device tree. Loads the data file written by tests/sim/tree.ts
 * (format documented there) and lays it out exactly as writePlainSysfs does:
 *
 *   devices/<path>/{uevent, liveupdate/{requested,preserved,reclaimed},
 *                   subsystem -> bus/<bus> or class/<class>,
 *                   driver -> bus/<bus>/drivers/<driver> (bus devices only)}
 *   bus/<bus>/devices/<name> -> devices/<path>, bus/<bus>/drivers/<driver>/
 *   class/<class>/<name> -> devices/<path>
 *   dev/{char,block}/<maj>:<min> -> devices/<path>
 *   kernel/liveupdate/{state,prepare,finish}
 *
 * Symlinks are relative. Path components that are not listed devices are
 * plain grouping directories. Directory entries are kept sorted by name
 * (binary search for lookups, index-based readdir offsets); path → device and
 * path → directory hash maps serve the control channel and loading.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luo_sim.h"

/* ---- hash maps: path → index -----------------------------------------------
 * Open addressing with linear probing. A slot holds the key's 32-bit hash
 * (high half) and index + 1 (low half, 0 = empty), so probes and growth rarely
 * touch the keys themselves.
 */
struct map {
	uint64_t *slots;
	uint32_t cap, count;
	const char *(*key)(uint32_t index);
};

static const char *device_key(uint32_t i) { return S.devices[i].path; }
static const char *dir_key(uint32_t i) { return S.dirs[i].path; }
static struct map devmap = {.key = device_key};
static struct map dirmap = {.key = dir_key};

static uint32_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	/* FNV-1a's low bits cluster for paths that differ in their last characters:
	 * mix them (murmur3's finaliser) before masking. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return (uint32_t)h;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (!p) {
		fprintf(stderr, "luo-sim: out of memory\n");
		abort();
	}
	return p;
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size);
	if (!p) {
		fprintf(stderr, "luo-sim: out of memory\n");
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p) {
		fprintf(stderr, "luo-sim: out of memory\n");
		abort();
	}
	return p;
}

static void map_insert(struct map *m, uint64_t slot)
{
	uint32_t mask = m->cap - 1;
	for (uint32_t at = (uint32_t)(slot >> 32);; at++) {
		if (!m->slots[at & mask]) {
			m->slots[at & mask] = slot;
			m->count++;
			return;
		}
	}
}

static void map_grow(struct map *m)
{
	uint64_t *old = m->slots;
	uint32_t oldcap = m->cap;
	m->cap = m->cap ? m->cap * 2 : 1024;
	m->slots = xcalloc(m->cap, sizeof *m->slots);
	m->count = 0;
	for (uint32_t i = 0; i < oldcap; i++)
		if (old[i])
			map_insert(m, old[i]);
	free(old);
}

static void map_put(struct map *m, uint32_t index)
{
	if ((m->count + 1) * 2 > m->cap)
		map_grow(m);
	map_insert(m, ((uint64_t)hash(m->key(index)) << 32) | (index + 1));
}

static uint32_t map_get(const struct map *m, const char *key)
{
	if (!m->cap)
		return UINT32_MAX;
	uint32_t mask = m->cap - 1, h = hash(key);
	for (uint32_t at = h;; at++) {
		uint64_t slot = m->slots[at & mask];
		if (!slot)
			return UINT32_MAX;
		uint32_t index = (uint32_t)slot - 1;
		if ((uint32_t)(slot >> 32) == h && strcmp(m->key(index), key) == 0)
			return index;
	}
}

static void maps_rebuild(void)
{
	memset(devmap.slots, 0, devmap.cap * sizeof *devmap.slots);
	devmap.count = 0;
	for (uint32_t i = 0; i < S.ndevices; i++)
		if (!S.devices[i].removed)
			map_put(&devmap, i);
	memset(dirmap.slots, 0, dirmap.cap * sizeof *dirmap.slots);
	dirmap.count = 0;
	for (uint32_t i = 0; i < S.ndirs; i++)
		if (!S.dirs[i].removed)
			map_put(&dirmap, i);
}

int32_t device_find(const char *path)
{
	uint32_t i = map_get(&devmap, path);
	return i == UINT32_MAX ? -1 : (int32_t)i;
}

uint32_t dir_find(const char *path)
{
	return map_get(&dirmap, path);
}

bool is_bus(const char *subsystem)
{
	for (size_t i = 0; i < S.nbuses; i++)
		if (strcmp(S.buses[i], subsystem) == 0)
			return true;
	return false;
}

/* ---- directories --------------------------------------------------------- */
static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* Index of the first entry >= name. */
static uint32_t dir_position(const struct dir *d, const char *name)
{
	uint32_t lo = 0, hi = d->count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (strcmp(d->entries[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct entry *dir_lookup(const struct dir *d, const char *name)
{
	uint32_t i = dir_position(d, name);
	return (i < d->count && strcmp(d->entries[i].name, name) == 0) ? &d->entries[i] : NULL;
}

static void dir_insert(uint32_t index, const char *name, uint64_t ino)
{
	struct dir *d = &S.dirs[index];
	if (d->count == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 4;
		d->entries = xrealloc(d->entries, d->cap * sizeof *d->entries);
	}
	uint32_t at = S.loading ? d->count : dir_position(d, name);
	memmove(&d->entries[at + 1], &d->entries[at], (d->count - at) * sizeof *d->entries);
	d->entries[at] = (struct entry){.name = name, .ino = ino};
	d->count++;
}

static void dir_remove_entry(uint32_t index, const char *name)
{
	struct dir *d = &S.dirs[index];
	uint32_t at = dir_position(d, name);
	if (at < d->count && strcmp(d->entries[at].name, name) == 0) {
		memmove(&d->entries[at], &d->entries[at + 1], (d->count - at - 1) * sizeof *d->entries);
		d->count--;
	}
}

/* Creates directory path (owned) below parent. */
static uint32_t dir_new(char *path, uint32_t parent, int32_t device)
{
	if (S.ndirs == S.capdirs) {
		S.capdirs = S.capdirs ? S.capdirs * 2 : 1024;
		S.dirs = xrealloc(S.dirs, S.capdirs * sizeof *S.dirs);
	}
	uint32_t index = S.ndirs++;
	struct dir *d = &S.dirs[index];
	memset(d, 0, sizeof *d);
	d->path = path;
	const char *slash = strrchr(path, '/');
	d->name = slash ? slash + 1 : path;
	d->parent = parent;
	d->device = device;
	d->depth = 0;
	if (*path) {
		d->depth = 1;
		for (const char *c = path; *c; c++)
			d->depth += *c == '/';
	}
	map_put(&dirmap, index);
	if (index != 0)
		dir_insert(parent, d->name, INO(K_DIR, index));
	return index;
}

/* The directory at path ("" is the root), created with its parents if needed. */
static uint32_t dir_ensure(const char *path)
{
	uint32_t found = dir_find(path);
	if (found != UINT32_MAX)
		return found;
	const char *slash = strrchr(path, '/');
	uint32_t parent;
	if (slash) {
		char *up = strndup(path, (size_t)(slash - path));
		parent = dir_ensure(up);
		free(up);
	} else {
		parent = dir_ensure("");
	}
	return dir_new(xstrdup(path), parent, -1);
}

static void dir_add_global(uint32_t dir, const char *name, enum global_file file)
{
	dir_insert(dir, name, INO(K_GLOBAL, file));
}

int tree_init(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	S.loading = true;
	dir_new(xstrdup(""), 0, -1);
	dir_ensure("devices");
	uint32_t kernel = dir_ensure("kernel");
	(void)kernel;
	if (S.enabled) {
		S.luo_dir = dir_ensure("kernel/liveupdate");
		dir_add_global(S.luo_dir, "state", G_STATE);
		dir_add_global(S.luo_dir, "prepare", G_PREPARE);
		dir_add_global(S.luo_dir, "finish", G_FINISH);
	}
	S.control_dir = dir_ensure(".luo-sim");
	dir_add_global(S.control_dir, "control", G_CONTROL);
	dir_add_global(S.control_dir, "events", G_EVENTS);
	dir_add_global(S.control_dir, "status", G_STATUS);
	dir_add_global(S.control_dir, "boot_id", G_BOOT_ID);
	return 0;
}

/* ---- devices ------------------------------------------------------------- */
static bool valid_name(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static bool valid_path(const char *path)
{
	const char *c = path;
	if (!*c)
		return false;
	for (;;) {
		const char *slash = strchr(c, '/');
		size_t n = slash ? (size_t)(slash - c) : strlen(c);
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!slash)
			return true;
		c = slash + 1;
	}
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	if (!*s)
		return false;
	unsigned long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

#define FAIL(...)                                       \
	do {                                            \
		int n_ = snprintf(err, errlen, "line %u: ", lineno); \
		if (n_ > 0 && (size_t)n_ < errlen)       \
			snprintf(err + n_, errlen - (size_t)n_, __VA_ARGS__); \
		return -EINVAL;                         \
	} while (0)

int tree_add_line(char *record, unsigned lineno, char *err, size_t errlen)
{
	/* record is "devices/" + the line: once the columns are split, record is
	 * the device directory's path and record + 8 the device path. */
	char *line = record + 8;
	char *cols[8];
	unsigned ncols = 0;
	char *props = NULL;
	unsigned nprops = 0;
	for (char *c = line;;) {
		char *tab = strchr(c, '\t');
		if (tab)
			*tab = '\0';
		if (ncols < 7)
			cols[ncols++] = c;
		else {
			if (!props)
				props = c;
			nprops++;
			if (!strchr(c, '=') || *c == '=')
				FAIL("uevent property \"%s\" is not KEY=VALUE", c);
		}
		if (!tab)
			break;
		c = tab + 1;
	}
	if (ncols < 7)
		FAIL("expected at least 7 tab-separated columns (path bus_support driver_support "
		     "subsystem driver devnum ifindex), found %u", ncols);
	const char *path = cols[0];
	if (!valid_path(path))
		FAIL("device path \"%s\" is not a relative path without empty, \".\" or \"..\" "
		     "components", path);
	for (int i = 1; i <= 2; i++)
		if (strcmp(cols[i], "0") != 0 && strcmp(cols[i], "1") != 0)
			FAIL("%s \"%s\" of %s is not 0 or 1", i == 1 ? "bus_support" : "driver_support",
			     cols[i], path);
	const char *subsystem = strcmp(cols[3], "-") ? cols[3] : NULL;
	const char *driver = strcmp(cols[4], "-") ? cols[4] : NULL;
	if (subsystem && !valid_name(subsystem))
		FAIL("subsystem \"%s\" of %s is not a plain name", subsystem, path);
	if (driver && !valid_name(driver))
		FAIL("driver \"%s\" of %s is not a plain name", driver, path);
	char devnum_kind = 0;
	unsigned long major = 0, minor = 0;
	if (strcmp(cols[5], "-") != 0) {
		char *c = cols[5];
		char *colon2 = strchr(c + 2, ':');
		bool ok = (c[0] == 'c' || c[0] == 'b') && c[1] == ':' && colon2;
		if (ok) {
			*colon2 = '\0';
			ok = parse_uint(c + 2, 4095, &major) && parse_uint(colon2 + 1, 1048575, &minor);
			*colon2 = ':';
		}
		if (!ok)
			FAIL("devnum \"%s\" of %s is not c:MAJOR:MINOR or b:MAJOR:MINOR", c, path);
		devnum_kind = c[0];
	}
	unsigned long ifindex;
	if (strcmp(cols[6], "-") != 0 && !parse_uint(cols[6], 0x7fffffff, &ifindex))
		FAIL("ifindex \"%s\" of %s is not a number", cols[6], path);

	if (device_find(path) >= 0)
		FAIL("device %s is listed twice", path);
	char *dirpath = record;
	if (dir_find(dirpath) != UINT32_MAX)
		FAIL("device %s is listed after a device below it; list parents first", path);
	const char *name = strrchr(path, '/');
	name = name ? name + 1 : path;
	char devnum[32] = "";
	if (devnum_kind)
		snprintf(devnum, sizeof devnum, "%lu:%lu", major, minor);
	bool bus = subsystem && is_bus(subsystem);

	if (!S.loading) {
		/* Adding to a live tree: refuse name clashes before changing anything. */
		struct buf p = {0};
		const char *slash = strrchr(dirpath, '/');
		buf_put(&p, dirpath, (size_t)(slash - dirpath));
		uint32_t parent = dir_find(p.p);
		bool clash = parent != UINT32_MAX && dir_lookup(&S.dirs[parent], name);
		if (!clash && subsystem) {
			p.len = 0;
			buf_printf(&p, bus ? "bus/%s/devices" : "class/%s", subsystem);
			uint32_t home = dir_find(p.p);
			clash = home != UINT32_MAX && dir_lookup(&S.dirs[home], name);
		}
		if (!clash && devnum_kind) {
			uint32_t dev = dir_find(devnum_kind == 'c' ? "dev/char" : "dev/block");
			clash = dev != UINT32_MAX && dir_lookup(&S.dirs[dev], devnum);
		}
		buf_free(&p);
		if (clash)
			FAIL("device %s clashes with an existing name in its directory, its %s "
			     "directory or dev/", path, bus ? "bus" : "class");
	}

	if (S.ndevices == S.capdevices) {
		S.capdevices = S.capdevices ? S.capdevices * 2 : 1024;
		S.devices = xrealloc(S.devices, S.capdevices * sizeof *S.devices);
	}
	uint32_t index = S.ndevices++;
	struct device *d = &S.devices[index];
	memset(d, 0, sizeof *d);
	d->path = path;
	d->name = name;
	d->subsystem = subsystem;
	d->driver = driver;
	d->props = props;
	d->nprops = nprops;
	d->bus_support = cols[1][0] == '1';
	d->driver_support = cols[2][0] == '1';
	d->on_bus = bus;
	d->home = UINT32_MAX;
	d->parent = -1;
	d->devnum_kind = devnum_kind;

	/* The nearest listed ancestor is the device's parent. */
	for (char *c = (char *)path + strlen(path); c-- > path;) {
		if (*c != '/')
			continue;
		*c = '\0';
		int32_t p = device_find(path);
		*c = '/';
		if (p >= 0) {
			d->parent = p;
			break;
		}
	}

	const char *slash = strrchr(dirpath, '/');
	*(char *)slash = '\0';
	uint32_t parentdir = dir_ensure(dirpath);
	*(char *)slash = '/';
	d->dir = dir_new(dirpath, parentdir, (int32_t)index);
	map_put(&devmap, index);

	dir_insert(d->dir, "uevent", INO(K_UEVENT, index));
	if (S.enabled)
		dir_insert(d->dir, "liveupdate", INO(K_LUDIR, index));
	if (subsystem) {
		struct buf p = {0};
		buf_printf(&p, bus ? "bus/%s/devices" : "class/%s", subsystem);
		d->home = dir_ensure(p.p);
		dir_insert(d->home, name, INO(K_HOME_LINK, index));
		dir_insert(d->dir, "subsystem", INO(K_SUBSYS_LINK, index));
		if (bus && driver) {
			p.len = 0;
			buf_printf(&p, "bus/%s/drivers/%s", subsystem, driver);
			dir_ensure(p.p);
			dir_insert(d->dir, "driver", INO(K_DRIVER_LINK, index));
		}
		buf_free(&p);
	}
	if (devnum_kind) {
		d->devnum = xstrdup(devnum);
		uint32_t dev = dir_ensure(devnum_kind == 'c' ? "dev/char" : "dev/block");
		dir_insert(dev, d->devnum, INO(K_DEVNUM_LINK, index));
	}
	return 0;
}

int tree_load(const char *file, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open tree file %s: %s", file, strerror(errno));
		return -errno;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	int ret = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		/* Each line's text stays alive (devices point into it), after a
		 * "devices/" prefix that becomes the device directory's path. */
		char *kept = xrealloc(NULL, (size_t)n + 9);
		memcpy(kept, "devices/", 8);
		memcpy(kept + 8, line, (size_t)n + 1);
		ret = tree_add_line(kept, lineno, err, errlen);
		if (ret) {
			char *message = strdup(err);
			snprintf(err, errlen, "%s, %s", file, message);
			free(message);
			free(kept);
			break;
		}
	}
	free(line);
	fclose(f);
	if (!ret && S.ndevices == 0) {
		snprintf(err, errlen, "tree file %s lists no device", file);
		ret = -EINVAL;
	}
	return ret;
}

int tree_finish_load(char *err, size_t errlen)
{
	S.loading = false;
	for (uint32_t i = 0; i < S.ndirs; i++) {
		struct dir *d = &S.dirs[i];
		qsort(d->entries, d->count, sizeof *d->entries, entry_cmp);
		for (uint32_t j = 1; j < d->count; j++) {
			if (strcmp(d->entries[j - 1].name, d->entries[j].name) == 0) {
				snprintf(err, errlen, "the tree defines %s%s%s twice (two devices or "
					 "links with one name, or a device named like an attribute)",
					 d->path, *d->path ? "/" : "", d->entries[j].name);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int device_depth(int32_t index)
{
	int depth = 0;
	for (; index >= 0; index = S.devices[index].parent)
		depth++;
	return depth;
}

/* Removes a device and every device below it, as a hot-unplug does. */
void device_remove(int32_t index)
{
	struct device *top = &S.devices[index];
	size_t n = strlen(top->path);
	for (uint32_t i = 0; i < S.ndevices; i++) {
		struct device *d = &S.devices[i];
		if (d->removed)
			continue;
		if ((int32_t)i != index && !(strncmp(d->path, top->path, n) == 0 && d->path[n] == '/'))
			continue;
		d->removed = true;
		S.nremoved++;
		if (d->home != UINT32_MAX)
			dir_remove_entry(d->home, d->name);
		if (d->devnum) {
			uint32_t dev = dir_find(d->devnum_kind == 'c' ? "dev/char" : "dev/block");
			if (dev != UINT32_MAX)
				dir_remove_entry(dev, d->devnum);
		}
	}
	const struct dir *own = &S.dirs[top->dir];
	dir_remove_entry(own->parent, own->name);
	size_t m = strlen(own->path);
	for (uint32_t i = 0; i < S.ndirs; i++) {
		struct dir *d = &S.dirs[i];
		if (strncmp(d->path, own->path, m) == 0 && (d->path[m] == '\0' || d->path[m] == '/'))
			d->removed = true;
	}
	maps_rebuild();
}

/* ---- nodes ---------------------------------------------------------------- */
static const struct device *node_device(uint64_t ino)
{
	uint64_t id = INO_ID(ino);
	return id < S.ndevices ? &S.devices[id] : NULL;
}

bool node_valid(uint64_t ino)
{
	uint64_t id = INO_ID(ino);
	int kind = INO_KIND(ino);
	if (kind == K_DIR)
		return id < S.ndirs && !S.dirs[id].removed;
	if (kind == K_GLOBAL)
		return id < G_COUNT && (S.enabled || id > G_FINISH);
	const struct device *d = node_device(ino);
	if (!d || d->removed)
		return false;
	switch (kind) {
	case K_UEVENT:
		return true;
	case K_LUDIR:
	case K_REQUESTED:
	case K_PRESERVED:
	case K_RECLAIMED:
		return S.enabled;
	case K_SUBSYS_LINK:
	case K_HOME_LINK:
		return d->subsystem != NULL;
	case K_DRIVER_LINK:
		return d->on_bus && d->driver;
	case K_DEVNUM_LINK:
		return d->devnum != NULL;
	default:
		return false;
	}
}

mode_t node_mode(uint64_t ino)
{
	switch (INO_KIND(ino)) {
	case K_DIR:
	case K_LUDIR:
		return S_IFDIR | 0755;
	case K_UEVENT:
	case K_REQUESTED:
		return S_IFREG | 0644;
	case K_PRESERVED:
	case K_RECLAIMED:
		return S_IFREG | 0444;
	case K_SUBSYS_LINK:
	case K_DRIVER_LINK:
	case K_HOME_LINK:
	case K_DEVNUM_LINK:
		return S_IFLNK | 0777;
	case K_GLOBAL:
		switch (INO_ID(ino)) {
		case G_PREPARE:
		case G_FINISH:
			return S_IFREG | 0200;
		case G_CONTROL:
			return S_IFREG | 0600;
		default:
			return S_IFREG | 0444;
		}
	default:
		return 0;
	}
}

static void up_levels(struct buf *out, uint32_t levels)
{
	for (uint32_t i = 0; i < levels; i++)
		buf_put(out, "../", 3);
}

int link_target(uint64_t ino, struct buf *out)
{
	if (!node_valid(ino))
		return -ENOENT;
	const struct device *d = node_device(ino);
	switch (INO_KIND(ino)) {
	case K_SUBSYS_LINK:
		up_levels(out, S.dirs[d->dir].depth);
		buf_printf(out, "%s/%s", d->on_bus ? "bus" : "class", d->subsystem);
		return 0;
	case K_DRIVER_LINK:
		up_levels(out, S.dirs[d->dir].depth);
		buf_printf(out, "bus/%s/drivers/%s", d->subsystem, d->driver);
		return 0;
	case K_HOME_LINK:
		up_levels(out, S.dirs[d->home].depth);
		buf_printf(out, "devices/%s", d->path);
		return 0;
	case K_DEVNUM_LINK:
		up_levels(out, 2);
		buf_printf(out, "devices/%s", d->path);
		return 0;
	default:
		return -EINVAL;
	}
}

void node_path(uint64_t ino, struct buf *out)
{
	static const char *const globals[G_COUNT] = {
		"kernel/liveupdate/state", "kernel/liveupdate/prepare", "kernel/liveupdate/finish",
		".luo-sim/control",        ".luo-sim/events",           ".luo-sim/status",
		".luo-sim/boot_id",
	};
	int kind = INO_KIND(ino);
	if (kind == K_DIR) {
		buf_puts(out, S.dirs[INO_ID(ino)].path);
		return;
	}
	if (kind == K_GLOBAL) {
		buf_puts(out, globals[INO_ID(ino)]);
		return;
	}
	const struct device *d = node_device(ino);
	buf_printf(out, "devices/%s/", d->path);
	switch (kind) {
	case K_UEVENT:
		buf_puts(out, "uevent");
		break;
	case K_LUDIR:
		buf_puts(out, "liveupdate");
		break;
	case K_REQUESTED:
		buf_puts(out, "liveupdate/requested");
		break;
	case K_PRESERVED:
		buf_puts(out, "liveupdate/preserved");
		break;
	case K_RECLAIMED:
		buf_puts(out, "liveupdate/reclaimed");
		break;
	case K_SUBSYS_LINK:
		buf_puts(out, "subsystem");
		break;
	case K_DRIVER_LINK:
		buf_puts(out, "driver");
		break;
	default:
		break;
	}
}
