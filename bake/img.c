/*
 * Input containers: format detection by content and the generic read API.
 * Each format (img_qcow2.c, img_vhd.c, img_raw.c) is an img_ops table;
 * this file probes them in order and checks every request against the
 * virtual size before dispatching.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "img.h"

/* Most specific first: raw accepts anything that merely looks like a disk. */
static const struct img_ops *const img_formats[] = {
	&img_qcow2_ops,
	&img_vhd_ops,
	&img_raw_ops,
};

#define IMG_NFORMATS (sizeof(img_formats) / sizeof(img_formats[0]))

static int
img_size(int fd, const char *name, uint64_t *size, struct pep_err *e)
{
	struct stat st;
	off_t end;

	if (fstat(fd, &st) != 0)
		return pep_errf(e, errno, "%s: stat: %s", name,
		    strerror(errno));
	if (S_ISDIR(st.st_mode))
		return pep_errf(e, EISDIR, "%s: is a directory, not a disk "
		    "image", name);
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (!S_ISBLK(st.st_mode))
		return pep_errf(e, PEP_EFORMAT, "%s: not a regular file or "
		    "block device", name);
	end = lseek(fd, 0, SEEK_END);
	if (end < 0)
		return pep_errf(e, errno, "%s: seek: %s", name,
		    strerror(errno));
	*size = (uint64_t)end;
	return 0;
}

static int
img_detect(struct img *im, struct pep_err *e)
{
	size_t i;
	int r;

	for (i = 0; i < IMG_NFORMATS; i++) {
		r = img_formats[i]->probe(im, e);
		if (r < 0)
			return r;
		if (r > 0) {
			im->ops = img_formats[i];
			return im->ops->open(im, e);
		}
	}
	return pep_errf(e, PEP_EFORMAT, "%s: not a disk image (no qcow2 "
	    "header, VHD footer, partition table or ext2/3/4 superblock)",
	    im->path);
}

int
img_open_fd(struct img **imp, int fd, const char *name, struct pep_err *e)
{
	struct img *im = NULL;
	uint64_t size = 0;
	int r;

	*imp = NULL;
	r = img_size(fd, name, &size, e);
	if (r < 0)
		return r;
	if (size == 0)
		return pep_errf(e, PEP_EFORMAT, "%s: empty file (0 bytes), "
		    "not a disk image", name);
	im = calloc(1, sizeof(*im));
	if (im == NULL)
		return pep_errf(e, ENOMEM, "%s: out of memory", name);
	im->path = name;
	im->fd = fd;
	im->file_size = size;
	r = img_detect(im, e);
	if (r < 0) {
		img_close(im);
		return r;
	}
	*imp = im;
	return 0;
}

int
img_open(struct img **imp, const char *path, struct pep_err *e)
{
	int fd;
	int r;

	*imp = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pep_errf(e, errno, "%s: cannot open: %s", path,
		    strerror(errno));
	r = img_open_fd(imp, fd, path, e);
	if (r < 0) {
		close(fd);
		return r;
	}
	(*imp)->own_fd = 1;
	return 0;
}

int
img_direct(struct img *im, uint64_t off, uint64_t *len, uint64_t *file_off)
{
	uint64_t want = *len;

	if (im->ops->direct == NULL || want == 0 || off >= im->virtual_size)
		return 0;
	if (want > im->virtual_size - off)
		want = im->virtual_size - off;
	*len = want;
	if (im->ops->direct(im, off, len, file_off) != 1)
		return 0;
	/* Never trust a run that leaves the file. */
	if (*len == 0 || *len > want || *file_off > im->file_size ||
	    *len > im->file_size - *file_off)
		return 0;
	return 1;
}

void
img_close(struct img *im)
{
	if (im == NULL)
		return;
	if (im->ops != NULL && im->ops->close != NULL)
		im->ops->close(im);
	if (im->own_fd && im->fd >= 0)
		close(im->fd);
	free(im);
}

int
img_pread(struct img *im, void *buf, size_t len, uint64_t off,
    struct pep_err *e)
{
	if (len == 0)
		return 0;
	if (off > im->virtual_size || len > im->virtual_size - off)
		return pep_errf(e, EINVAL, "%s: read of %zu bytes at offset "
		    "%llu is past the end of the virtual disk (size %llu)",
		    im->path, len, (unsigned long long)off,
		    (unsigned long long)im->virtual_size);
	return im->ops->pread(im, buf, len, off, e);
}

int
img_map(struct img *im, uint64_t off, uint64_t *len, struct pep_err *e)
{
	uint64_t want = *len;
	int r;

	if (want == 0 || off >= im->virtual_size)
		return pep_errf(e, EINVAL, "%s: map at offset %llu is past "
		    "the end of the virtual disk (size %llu)", im->path,
		    (unsigned long long)off,
		    (unsigned long long)im->virtual_size);
	if (want > im->virtual_size - off)
		want = im->virtual_size - off;
	*len = want;
	r = im->ops->map(im, off, len, e);
	if (r < 0)
		return r;
	if (*len == 0 || *len > want)
		return pep_errf(e, PEP_ECORRUPT, "%s: internal error: bad "
		    "extent length at offset %llu", im->path,
		    (unsigned long long)off);
	return r;
}

int
img_read_file(struct img *im, void *buf, size_t len, uint64_t off,
    const char *what, struct pep_err *e)
{
	return img_read_fd(im, im->fd, buf, len, off, what, e);
}

int
img_read_fd(struct img *im, int fd, void *buf, size_t len, uint64_t off,
    const char *what, struct pep_err *e)
{
	uint8_t *p = buf;
	size_t done = 0;
	ssize_t n;

	if (off > im->file_size || len > im->file_size - off)
		goto truncated;
	while (done < len) {
		n = pread(fd, p + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pep_errf(e, errno, "%s: read %s at offset %llu: "
			    "%s", im->path, what,
			    (unsigned long long)(off + done),
			    strerror(errno));
		if (n == 0)
			goto truncated;
		done += (size_t)n;
	}
	return 0;
truncated:
	return pep_errf(e, PEP_ECORRUPT, "%s: truncated: %s at offset %llu "
	    "is past the end of the file (size %llu)", im->path, what,
	    (unsigned long long)off, (unsigned long long)im->file_size);
}
