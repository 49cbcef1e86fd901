/* luo-sim: text buffers, JSON strings and errno names. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luo_sim.h"

static void buf_reserve(struct buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		fprintf(stderr, "luo-sim: out of memory\n");
		abort();
	}
	b->p = p;
	b->cap = cap;
}

void buf_put(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void buf_json(struct buf *b, const char *s, size_t n)
{
	buf_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"':
			buf_put(b, "\\\"", 2);
			break;
		case '\\':
			buf_put(b, "\\\\", 2);
			break;
		case '\n':
			buf_put(b, "\\n", 2);
			break;
		case '\t':
			buf_put(b, "\\t", 2);
			break;
		default:
			if (c < 0x20 || c >= 0x7f)
				buf_printf(b, "\\u%04x", c); /* bytes, not UTF-8: keep it ASCII */
			else
				buf_put(b, (const char *)&c, 1);
		}
	}
	buf_put(b, "\"", 1);
}

void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

const char *errno_name(int err)
{
	if (err < 0)
		err = -err;
	const char *name = strerrorname_np(err);
	return name ? name : "EUNKNOWN";
}

/* "EBUSY" or "16" → 16; 0 when unknown. */
int errno_parse(const char *name)
{
	if (isdigit((unsigned char)name[0])) {
		char *end;
		long v = strtol(name, &end, 10);
		return (*end || v <= 0 || v > 4095) ? 0 : (int)v;
	}
	for (int i = 1; i < 256; i++) {
		const char *known = strerrorname_np(i);
		if (known && strcmp(known, name) == 0)
			return i;
	}
	return 0;
}
