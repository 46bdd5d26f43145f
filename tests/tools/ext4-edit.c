/*
 * ext4-edit: drive bake/ext4fs.c from shell tests.
 *
 *   ext4-edit [-t EPOCH] IMG OFFSET CMD [ARGS] [CMD [ARGS]]...
 *
 * Commands run in order on one open filesystem:
 *   write PATH SRCFILE   replace or create PATH with SRCFILE's bytes
 *   read PATH            copy PATH's bytes to stdout
 *   mkdir PATH           create PATH and missing parents
 *   exists PATH          print 1 or 0
 *   size                 print the filesystem size in bytes
 * The filesystem is opened read-write unless every command is read-only.
 * EPOCH (default 1700000000) is the timestamp written.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../bake/bake.h"

static int
parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno != 0 || end == s || *end != '\0' || s[0] == '-' ? -1 : 0;
}

static int
slurp(const char *path, char **buf, size_t *len)
{
	FILE *f;
	char *b = NULL, *nb;
	size_t n = 0, cap = 0, got;

	f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	for (;;) {
		if (cap - n < 65536) {
			cap = cap * 2 + 65536;
			nb = realloc(b, cap);
			if (nb == NULL)
				break;
			b = nb;
		}
		got = fread(b + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f) || b == NULL || n > cap) {
		fclose(f);
		free(b);
		return -1;
	}
	fclose(f);
	*buf = b;
	*len = n;
	return 0;
}

static int
cmd_write(struct ext4 *x, const char *path, const char *src,
    struct pep_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (slurp(src, &buf, &len) < 0)
		return pep_errf(e, errno ? errno : EIO, "%s: cannot read",
		    src);
	r = ext4_write_file(x, path, buf, len, e);
	free(buf);
	return r;
}

static int
cmd_read(struct ext4 *x, const char *path, struct pep_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	r = ext4_read_file(x, path, &buf, &len, e);
	if (r == 0 && fwrite(buf, 1, len, stdout) != len)
		r = pep_errf(e, EIO, "stdout: write error");
	free(buf);
	return r;
}

/* Run argv[i..]; returns 0 or < 0. */
static int
run(struct ext4 *x, int argc, char **argv, int i, struct pep_err *e)
{
	int r = 0;

	while (r == 0 && i < argc) {
		const char *c = argv[i];

		if (strcmp(c, "write") == 0 && i + 2 < argc) {
			r = cmd_write(x, argv[i + 1], argv[i + 2], e);
			i += 3;
		} else if (strcmp(c, "read") == 0 && i + 1 < argc) {
			r = cmd_read(x, argv[i + 1], e);
			i += 2;
		} else if (strcmp(c, "mkdir") == 0 && i + 1 < argc) {
			r = ext4_mkdir_p(x, argv[i + 1], e);
			i += 2;
		} else if (strcmp(c, "exists") == 0 && i + 1 < argc) {
			printf("%d\n", ext4_exists(x, argv[i + 1]));
			i += 2;
		} else if (strcmp(c, "size") == 0) {
			printf("%" PRIu64 "\n", ext4_size_bytes(x));
			i += 1;
		} else {
			r = pep_errf(e, PEP_EUSAGE, "bad command: %s", c);
		}
	}
	return r;
}

static int
needs_rw(int argc, char **argv, int i)
{
	for (; i < argc; i++)
		if (strcmp(argv[i], "write") == 0 ||
		    strcmp(argv[i], "mkdir") == 0)
			return 1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct pep_err e = { 0, "" };
	struct ext4 *x = NULL;
	uint64_t off, epoch = 1700000000;
	int i = 1, r, rw, fd;

	if (argc > 2 && strcmp(argv[1], "-t") == 0) {
		if (parse_u64(argv[2], &epoch) < 0) {
			fprintf(stderr, "ext4-edit: bad epoch: %s\n", argv[2]);
			return 2;
		}
		i = 3;
	}
	if (argc - i < 3 || parse_u64(argv[i + 1], &off) < 0) {
		fprintf(stderr, "usage: ext4-edit [-t EPOCH] IMG OFFSET CMD "
		    "[ARGS]...\n");
		return 2;
	}
	rw = needs_rw(argc, argv, i + 2);
	fd = open(argv[i], (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ext4-edit: %s: %s\n", argv[i],
		    strerror(errno));
		return 1;
	}
	r = ext4_open(&x, fd, argv[i], off, rw, (time_t)epoch, &e);
	close(fd);	/* the handle holds its own descriptor */
	if (r == 0)
		r = run(x, argc, argv, i + 2, &e);
	if (x != NULL && r < 0)
		ext4_abort(x);	/* a failed edit writes nothing */
	else if (x != NULL) {
		struct pep_err e2 = { 0, "" };
		int r2 = ext4_close(x, &e2);

		if (r2 < 0) {
			r = r2;
			e = e2;
		}
	}
	fflush(stdout);
	if (r < 0) {
		fprintf(stderr, "ext4-edit: %s\n", e.msg[0] ? e.msg :
		    pep_strerror(r));
		return 1;
	}
	return 0;
}
