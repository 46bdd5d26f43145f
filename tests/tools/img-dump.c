/*
 * img-dump IMAGE OUT.raw [MAP]: open IMAGE with pep-bake's container
 * readers, print "format=<fmt> virtual_size=<n>", write the whole virtual
 * disk to OUT.raw (zero runs left as holes) and, if MAP is given, every
 * run img_map returned to MAP as "<start> <length> data|zero" lines. On
 * error: the message on stderr as one line, exit 1. A test tool for
 * tests/cases/img_*.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../bake/img.h"

#define DUMP_CHUNK (1u << 20)

static int
dump_write(int fd, const uint8_t *p, size_t len, uint64_t off,
    const char *name, struct pep_err *e)
{
	ssize_t n;

	while (len > 0) {
		n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return pep_errf(e, errno ? errno : EIO, "%s: write: %s",
			    name, strerror(errno ? errno : EIO));
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int
dump_data(struct img *im, int fd, const char *name, uint8_t *buf,
    uint64_t off, uint64_t len, struct pep_err *e)
{
	size_t n;
	int r;

	while (len > 0) {
		n = len < DUMP_CHUNK ? (size_t)len : DUMP_CHUNK;
		r = img_pread(im, buf, n, off, e);
		if (r < 0)
			return r;
		r = dump_write(fd, buf, n, off, name, e);
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

static int
dump(struct img *im, int fd, const char *name, FILE *map,
    struct pep_err *e)
{
	uint8_t *buf;
	uint64_t off = 0, len;
	int r = 0;

	buf = malloc(DUMP_CHUNK);
	if (buf == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	if (ftruncate(fd, (off_t)im->virtual_size) != 0) {
		r = pep_errf(e, errno, "%s: truncate: %s", name,
		    strerror(errno));
		goto out;
	}
	while (off < im->virtual_size) {
		len = im->virtual_size - off;
		r = img_map(im, off, &len, e);
		if (r < 0)
			goto out;
		if (map != NULL)
			fprintf(map, "%llu %llu %s\n", (unsigned long long)off,
			    (unsigned long long)len,
			    r == IMG_DATA ? "data" : "zero");
		if (r == IMG_DATA)
			r = dump_data(im, fd, name, buf, off, len, e);
		if (r < 0)
			goto out;
		off += len;
	}
	r = 0;
out:
	free(buf);
	return r;
}

int
main(int argc, char **argv)
{
	struct pep_err e = { 0, "" };
	struct img *im = NULL;
	FILE *map = NULL;
	int fd = -1, r;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: img-dump IMAGE OUT.raw [MAP]\n");
		return 2;
	}
	r = img_open(&im, argv[1], &e);
	if (r < 0)
		goto out;
	printf("format=%s virtual_size=%llu\n", im->format,
	    (unsigned long long)im->virtual_size);
	fflush(stdout);
	fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = pep_errf(&e, errno, "%s: %s", argv[2], strerror(errno));
		goto out;
	}
	if (argc == 4) {
		map = fopen(argv[3], "we");
		if (map == NULL) {
			r = pep_errf(&e, errno, "%s: %s", argv[3],
			    strerror(errno));
			goto out;
		}
	}
	r = dump(im, fd, argv[2], map, &e);
	if (close(fd) != 0 && r == 0)
		r = pep_errf(&e, errno, "%s: close: %s", argv[2],
		    strerror(errno));
	fd = -1;
out:
	if (map != NULL && fclose(map) != 0 && r == 0)
		r = pep_errf(&e, errno, "%s: close: %s", argv[3],
		    strerror(errno));
	if (fd >= 0)
		close(fd);
	img_close(im);
	if (r < 0)
		fprintf(stderr, "%s\n", e.msg);
	return r < 0 ? 1 : 0;
}
