/*
 * bake/ext4_quota.c's file format: the quota files mke2fs and e2fsck
 * wrote (tests/data/quota/TYPE.qf) parse to what debugfs lists for them
 * (TYPE.expect: id, bytes, inodes); quota_build round-trips id sets that
 * spread over the radix tree, keeps limits, grace times and the all-zero
 * escape; and damaged files are refused, not followed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bake/ext4.h"
#include "../tapdata.h"

static const char *const type_names[QUOTA_NTYPES] = {
	"user", "group", "project"
};

static void
mke2fs_files(const char *dir)
{
	struct quota_file qf;
	struct pep_err e = { 0, "" };
	char path[4096], *buf, *want, *line, *save = NULL;
	size_t len = 0, wlen = 0, i;
	unsigned long long id, space, inodes;
	int t, ok;

	for (t = 0; t < QUOTA_NTYPES; t++) {
		snprintf(path, sizeof(path), "%s/quota/%s.qf", dir,
		    type_names[t]);
		buf = tap_slurp(path, &len);
		snprintf(path, sizeof(path), "%s/quota/%s.expect", dir,
		    type_names[t]);
		want = tap_slurp(path, &wlen);
		if (!tap_ok(buf != NULL && want != NULL, "%s: data files",
		    type_names[t]))
			continue;
		want[wlen] = '\0';
		ok = quota_parse((uint8_t *)buf, len, t, "qf", &qf, &e) == 0;
		tap_ok(ok, "%s: mke2fs's file parses (%s)", type_names[t],
		    e.msg);
		i = 0;
		for (line = strtok_r(want, "\n", &save); ok && line != NULL;
		    line = strtok_r(NULL, "\n", &save), i++) {
			if (sscanf(line, "%llu %llu %llu", &id, &space,
			    &inodes) != 3 || i >= qf.n || qf.ent[i].id != id ||
			    qf.ent[i].space != space ||
			    qf.ent[i].inodes != inodes)
				break;
		}
		tap_ok(ok && line == NULL && i == qf.n, "%s: %zu entries as "
		    "debugfs lists them", type_names[t], i);
		quota_file_free(&qf);
		free(buf);
		free(want);
	}
}

/* Field by field: the struct has padding. */
static int
same_files(const struct quota_file *a, const struct quota_file *b)
{
	const struct quota_entry *x, *y;
	size_t i;

	if (a->n != b->n || a->bgrace != b->bgrace || a->igrace != b->igrace ||
	    a->flags != b->flags)
		return 0;
	for (i = 0; i < a->n; i++) {
		x = &a->ent[i];
		y = &b->ent[i];
		if (x->id != y->id || x->ihard != y->ihard ||
		    x->isoft != y->isoft || x->inodes != y->inodes ||
		    x->bhard != y->bhard || x->bsoft != y->bsoft ||
		    x->space != y->space || x->btime != y->btime ||
		    x->itime != y->itime)
			return 0;
	}
	return 1;
}

/* ids: n of them from a small PRNG spread over all four tree levels. */
static void
round_trip(const char *what, const uint32_t *ids, size_t n, int type)
{
	struct quota_file qf = { 7200, 3600, 0, NULL, 0, 0 }, back;
	struct pep_err e = { 0, "" };
	uint8_t *buf = NULL;
	size_t len = 0, i;
	int ok;

	qf.ent = calloc(n ? n : 1, sizeof(qf.ent[0]));
	qf.n = qf.cap = n;
	for (i = 0; i < n; i++) {
		qf.ent[i].id = ids[i];
		qf.ent[i].space = (uint64_t)ids[i] * 1024;
		qf.ent[i].inodes = i;
		qf.ent[i].bhard = i % 3 ? 0 : 5000 + i;
		qf.ent[i].isoft = i % 5 ? 0 : 77;
		qf.ent[i].btime = i % 7 ? 0 : 1700000000;
	}
	ok = quota_build(&qf, type, &buf, &len) == 0;
	ok = ok && len % 1024 == 0 &&
	    quota_parse(buf, len, type, what, &back, &e) == 0;
	tap_ok(ok && same_files(&qf, &back), "%s: %zu ids round-trip (%s)",
	    what, n, e.msg);
	if (ok)
		quota_file_free(&back);
	free(buf);
	quota_file_free(&qf);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
round_trips(void)
{
	static const uint32_t edges[] = { 0, 1, 255, 256, 65535, 65536,
	    16777215, 16777216, 2147483648u, 4294967295u };
	uint32_t many[3000], x = 12345;
	size_t i, n = 0;

	round_trip("empty", NULL, 0, QUOTA_USR);
	round_trip("id 0 only, all zero but id", edges, 1, QUOTA_GRP);
	round_trip("byte edges", edges, sizeof(edges) / sizeof(edges[0]),
	    QUOTA_PRJ);
	for (i = 0; i < 3000; i++) {
		x = x * 1103515245u + 12345u;
		many[i] = i < 1500 ? x : (uint32_t)i;
	}
	qsort(many, 3000, sizeof(many[0]), cmp_u32);
	for (i = 0; i < 3000; i++)
		if (n == 0 || many[i] != many[n - 1])
			many[n++] = many[i];
	round_trip("3000 ids", many, n, QUOTA_USR);
}

/* A built file with one change made to it must be refused. */
static void
refused(const char *what, void (*spoil)(uint8_t *, size_t), int type,
    int want)
{
	static const uint32_t ids[] = { 0, 1000, 70000 };
	struct quota_file qf = { 0, 0, 0, NULL, 3, 3 }, back;
	struct pep_err e = { 0, "" };
	uint8_t *buf = NULL;
	size_t len = 0, i;
	int r;

	qf.ent = calloc(3, sizeof(qf.ent[0]));
	for (i = 0; i < 3; i++)
		qf.ent[i].id = ids[i];
	if (quota_build(&qf, QUOTA_USR, &buf, &len) < 0)
		abort();
	spoil(buf, len);
	r = quota_parse(buf, len, type, "spoilt", &back, &e);
	tap_ok(r == -want && e.msg[0] != '\0' && back.ent == NULL,
	    "%s: refused (%s)", what, e.msg);
	free(buf);
	quota_file_free(&qf);
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void spoil_none(uint8_t *b, size_t n) { (void)b; (void)n; }
static void spoil_magic(uint8_t *b, size_t n) { (void)n; b[0] ^= 1; }
static void spoil_loop(uint8_t *b, size_t n) { (void)n; put32(b + 1024, 1); }
static void spoil_far(uint8_t *b, size_t n) { put32(b + 1024, (uint32_t)(n / 1024)); }
/* The root's last ref repeats its first (the path of ids 0..2^24-1). */
static void spoil_twice(uint8_t *b, size_t n)
{
	(void)n;
	memcpy(b + 1024 + 4 * 255, b + 1024, 4);
}
static void spoil_dup(uint8_t *b, size_t n)
{
	(void)n;
	put32(b + 2 * 1024 + 16 + 72, 70000);	/* id 1000 -> 70000 */
}

static void
refusals(void)
{
	refused("wrong type's magic", spoil_none, QUOTA_GRP, PEP_EUNSUPPORTED);
	refused("bad magic", spoil_magic, QUOTA_USR, PEP_EUNSUPPORTED);
	refused("tree block pointing at the root", spoil_loop, QUOTA_USR,
	    PEP_ECORRUPT);
	refused("block number past the end", spoil_far, QUOTA_USR,
	    PEP_ECORRUPT);
	refused("tree block reached twice", spoil_twice, QUOTA_USR,
	    PEP_ECORRUPT);
	refused("an id twice", spoil_dup, QUOTA_USR, PEP_ECORRUPT);
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_quota DATADIR\n");
		return 2;
	}
	mke2fs_files(argv[1]);
	round_trips();
	refusals();
	return tap_done();
}
