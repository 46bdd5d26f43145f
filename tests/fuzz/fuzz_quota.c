/*
 * libFuzzer target for quota_parse (bake/ext4_quota.c), seeded with the
 * quota files mke2fs and e2fsck write (tests/fuzz/corpus/quota: the first
 * byte is the quota type, the rest the file). Beyond the sanitizers: a
 * file that parses has its ids in order and once each; quota_build of it
 * parses back to the same entries, and building that again gives the same
 * bytes (the writer is deterministic and its output is its own fixpoint).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../bake/ext4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_sorted(const struct quota_file *qf)
{
	size_t i;

	for (i = 1; i < qf->n; i++)
		if (qf->ent[i - 1].id >= qf->ent[i].id)
			abort();
}

/* Field by field: the struct has padding. */
static int
same(const struct quota_file *a, const struct quota_file *b)
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct quota_file qf, back;
	struct pep_err e = { 0, "" };
	uint8_t *out = NULL, *out2 = NULL;
	size_t len = 0, len2 = 0;
	int type;

	if (size < 1)
		return 0;
	type = data[0] % QUOTA_NTYPES;
	if (quota_parse(data + 1, size - 1, type, "fuzz", &qf, &e) < 0) {
		if (e.msg[0] == '\0' || qf.ent != NULL)
			abort();
		return 0;
	}
	check_sorted(&qf);
	if (quota_build(&qf, type, &out, &len) < 0)
		abort();
	if (quota_parse(out, len, type, "rebuilt", &back, &e) < 0)
		abort();
	if (!same(&qf, &back))
		abort();
	if (quota_build(&back, type, &out2, &len2) < 0 || len2 != len ||
	    memcmp(out, out2, len) != 0)
		abort();
	free(out);
	free(out2);
	quota_file_free(&qf);
	quota_file_free(&back);
	return 0;
}
