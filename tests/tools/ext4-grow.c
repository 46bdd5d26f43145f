/*
 * ext4-grow: test tool for bake/ext4_grow.c.
 *   ext4-grow [-t EPOCH] IMAGE OFFSET NEWBYTES
 * Grows the ext2/3/4 filesystem at byte OFFSET of IMAGE to fill NEWBYTES
 * (the file is extended if needed). Prints "old_blocks new_blocks
 * old_groups new_groups itable_zeroed" on success; one line on stderr
 * and exit 1 on failure.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../bake/bake.h"

static int
grow(const char *img, uint64_t off, uint64_t bytes, time_t t,
    struct pep_err *e)
{
	struct ext4_grow_info gi;
	struct ext4 *x = NULL;
	struct stat st;
	int fd, r;

	fd = open(img, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return pep_errf(e, 2, "%s: cannot open", img);
	r = ext4_open(&x, fd, img, off, 1, t, e);
	if (r == 0 && (uint64_t)st.st_size < off + bytes &&
	    ftruncate(fd, (off_t)(off + bytes)) < 0)
		r = pep_errf(e, 2, "%s: cannot extend", img);
	if (r == 0) {
		/* One fsync when everything is written, as pep-bake does. */
		ext4_set_nosync(x);
		r = ext4_grow(x, fd, off, bytes, &gi, e);
	}
	if (r == 0) {
		r = ext4_close(x, e);
		if (r == 0 && fsync(fd) < 0)
			r = pep_errf(e, 2, "%s: fsync failed", img);
	} else
		ext4_abort(x);	/* a refused grow writes nothing */
	/* A refused grow leaves the file as it was, size included. */
	if (r < 0 && ftruncate(fd, st.st_size) < 0)
		r = pep_errf(e, 2, "%s: cannot restore the size", img);
	close(fd);
	if (r == 0)
		printf("%llu %llu %u %u %llu\n",
		    (unsigned long long)gi.old_blocks,
		    (unsigned long long)gi.new_blocks, gi.old_groups,
		    gi.new_groups, (unsigned long long)gi.itable_zeroed);
	return r;
}

int
main(int argc, char **argv)
{
	struct pep_err e = { 0, "" };
	time_t t = 1700000000;
	int a = 1;

	if (argc > 2 && strcmp(argv[1], "-t") == 0) {
		t = (time_t)strtoll(argv[2], NULL, 10);
		a = 3;
	}
	if (argc - a != 3) {
		fprintf(stderr, "usage: ext4-grow [-t EPOCH] IMAGE OFFSET "
		    "NEWBYTES\n");
		return 2;
	}
	if (grow(argv[a], strtoull(argv[a + 1], NULL, 0),
	    strtoull(argv[a + 2], NULL, 0), t, &e) < 0) {
		fprintf(stderr, "ext4-grow: %s\n", e.msg);
		return 1;
	}
	return 0;
}
