/*
 * libext2fs I/O over a file descriptor at a byte offset.
 *
 * libext2fs's unix_io opens by path (pep-bake's output is an O_TMPFILE,
 * reachable only as /proc/self/fd/N), fsyncs the file on every open
 * ("previous errors in the block device"), and keeps a write-back cache
 * whose flush fsyncs again. pep-bake writes a fresh temporary file and
 * fsyncs it once when it is complete, so here reads and writes go
 * straight to pread/pwrite on a dup of the caller's descriptor, and
 * flush is the caller's fsync, done only when libext2fs asks for one.
 *
 * Until ext4_io_cache turns it on: then single-block reads and writes
 * go through a write-back cache of FDIO_LINES blocks (set-associative,
 * least recently used out), which the content operations need: making
 * a file reads and writes its inode's table block several times, and a
 * directory's blocks are read for every name added. It is off while the
 * filesystem is grown (ext4_grow.c writes tables with its own pwrite),
 * and whoever writes the file around libext2fs afterwards says so with
 * ext4_io_forget (ext4_data.c's file data). Transfers of several blocks
 * or of bytes go to the file after the cached blocks they overlap are
 * written back (reads) or dropped (writes).
 *
 * The name given to ext2fs_open2 is the descriptor's number ("7"); the
 * option string may carry "offset=BYTES".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ext2fs/ext2fs.h>

#include "ext4_priv.h"

#define FDIO_WAYS	8
#define FDIO_SETS	256
#define FDIO_LINES	(FDIO_WAYS * FDIO_SETS)

struct fdio_line {
	unsigned long long blk;
	uint64_t used;		/* last use; 0: empty */
	int dirty;
};

struct fdio {
	int fd;
	int rw;
	uint64_t offset;
	struct struct_io_stats stats;
	struct fdio_line *lines;	/* the cache, when on */
	uint8_t *data;			/* FDIO_LINES blocks */
	uint64_t clock;
};

static struct fdio *
fdio_of(io_channel ch)
{
	return ch->private_data;
}

/* Bytes in a transfer of count: blocks, or bytes when negative. */
static ssize_t
fdio_size(io_channel ch, int count)
{
	return count < 0 ? -(ssize_t)count : (ssize_t)count * ch->block_size;
}

static errcode_t
fdio_open(const char *name, int flags, io_channel *chp)
{
	io_channel ch = NULL;
	struct fdio *d = NULL;
	char *end;
	long fd;

	errno = 0;
	fd = strtol(name, &end, 10);
	if (name[0] == '\0' || *end != '\0' || errno != 0 || fd < 0 ||
	    fd > INT32_MAX)
		return EXT2_ET_BAD_DEVICE_NAME;
	ch = calloc(1, sizeof(*ch));
	d = calloc(1, sizeof(*d));
	if (ch == NULL || d == NULL)
		goto nomem;
	ch->name = strdup(name);
	if (ch->name == NULL)
		goto nomem;
	d->fd = fcntl((int)fd, F_DUPFD_CLOEXEC, 3);
	if (d->fd < 0) {
		free(ch->name);
		free(ch);
		free(d);
		return errno;
	}
	d->rw = (flags & IO_FLAG_RW) != 0;
	d->stats.num_fields = 2;
	ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	ch->manager = ext4_io_manager;
	ch->block_size = 1024;
	ch->refcount = 1;
	ch->private_data = d;
	*chp = ch;
	return 0;
nomem:
	if (ch != NULL)
		free(ch->name);
	free(ch);
	free(d);
	return EXT2_ET_NO_MEMORY;
}

static errcode_t fdio_cache_off(io_channel ch);

static errcode_t
fdio_close(io_channel ch)
{
	struct fdio *d = fdio_of(ch);
	errcode_t err;

	if (--ch->refcount > 0)
		return 0;
	err = fdio_cache_off(ch);
	close(d->fd);
	free(d);
	free(ch->name);
	free(ch);
	return err;
}

/* pread all of it; past the end of the file reads as a short read. */
static errcode_t
fdio_read_file(io_channel ch, unsigned long long block, int count,
    void *data)
{
	struct fdio *d = fdio_of(ch);
	ssize_t size = fdio_size(ch, count), done = 0, n;
	uint64_t at = d->offset + block * (uint64_t)ch->block_size;

	while (done < size) {
		n = pread(d->fd, (char *)data + done, (size_t)(size - done),
		    (off_t)(at + (uint64_t)done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			break;
		done += n;
	}
	d->stats.bytes_read += (unsigned long long)done;
	if (done < size) {
		memset((char *)data + done, 0, (size_t)(size - done));
		return EXT2_ET_SHORT_READ;
	}
	return 0;
}

static errcode_t
fdio_write_at(struct fdio *d, uint64_t at, const void *data, ssize_t size)
{
	ssize_t done = 0, n;

	if (!d->rw)
		return EXT2_ET_RO_FILSYS;
	while (done < size) {
		n = pwrite(d->fd, (const char *)data + done,
		    (size_t)(size - done), (off_t)(at + (uint64_t)done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return EXT2_ET_SHORT_WRITE;
		done += n;
	}
	d->stats.bytes_written += (unsigned long long)done;
	return 0;
}

static errcode_t
fdio_write_file(io_channel ch, unsigned long long block, int count,
    const void *data)
{
	struct fdio *d = fdio_of(ch);

	return fdio_write_at(d, d->offset + block * (uint64_t)ch->block_size,
	    data, fdio_size(ch, count));
}

/* ------------------------------------------------------------- cache */

static uint8_t *
line_data(io_channel ch, const struct fdio_line *l)
{
	struct fdio *d = fdio_of(ch);

	return d->data + (size_t)(l - d->lines) * (size_t)ch->block_size;
}

static struct fdio_line *
line_set(struct fdio *d, unsigned long long blk)
{
	uint64_t h = blk * 0x9e3779b97f4a7c15ull;

	return &d->lines[(size_t)(h >> 40) % FDIO_SETS * FDIO_WAYS];
}

static struct fdio_line *
line_find(struct fdio *d, unsigned long long blk)
{
	struct fdio_line *set = line_set(d, blk);
	int i;

	for (i = 0; i < FDIO_WAYS; i++)
		if (set[i].used != 0 && set[i].blk == blk)
			return &set[i];
	return NULL;
}

static errcode_t
line_write_back(io_channel ch, struct fdio_line *l)
{
	errcode_t err;

	if (!l->dirty)
		return 0;
	err = fdio_write_file(ch, l->blk, 1, line_data(ch, l));
	if (err == 0)
		l->dirty = 0;
	return err;
}

/* A line forgotten: empty, and never written back. */
static void
line_drop(struct fdio_line *l)
{
	l->used = 0;
	l->dirty = 0;
}

/* A line for blk (not cached): an empty one, or the least recently
 * used of its set, written back first. */
static errcode_t
line_take(io_channel ch, unsigned long long blk, struct fdio_line **lp)
{
	struct fdio *d = fdio_of(ch);
	struct fdio_line *set = line_set(d, blk), *l = &set[0];
	errcode_t err;
	int i;

	for (i = 1; i < FDIO_WAYS && l->used != 0; i++)
		if (set[i].used < l->used)
			l = &set[i];
	err = line_write_back(ch, l);
	if (err != 0)
		return err;
	l->blk = blk;
	l->used = ++d->clock;
	l->dirty = 0;
	*lp = l;
	return 0;
}

/* Every cached line in [first, first + n): written back, dropped (or
 * both, in that order). */
static errcode_t
lines_in(io_channel ch, unsigned long long first, unsigned long long n,
    int write_back, int drop)
{
	struct fdio *d = fdio_of(ch);
	struct fdio_line *l;
	errcode_t err = 0;
	size_t i;

	if (d->lines == NULL)
		return 0;
	if (n <= 2 * FDIO_WAYS) {
		for (i = 0; i < n && err == 0; i++) {
			l = line_find(d, first + i);
			if (l != NULL && write_back)
				err = line_write_back(ch, l);
			if (l != NULL && err == 0 && drop)
				line_drop(l);
		}
		return err;
	}
	for (i = 0; i < FDIO_LINES && err == 0; i++) {
		l = &d->lines[i];
		if (l->used == 0 || l->blk < first || l->blk - first >= n)
			continue;
		if (write_back)
			err = line_write_back(ch, l);
		if (err == 0 && drop)
			line_drop(l);
	}
	return err;
}

/* The blocks a transfer of count (blocks, or bytes when negative) at
 * block touches. */
static unsigned long long
fdio_span(io_channel ch, int count)
{
	unsigned long long bytes = (unsigned long long)fdio_size(ch, count);

	return (bytes + (unsigned)ch->block_size - 1) /
	    (unsigned)ch->block_size;
}

static errcode_t
fdio_cache_off(io_channel ch)
{
	struct fdio *d = fdio_of(ch);
	errcode_t err;

	err = lines_in(ch, 0, ~0ULL, 1, 1);
	free(d->lines);
	free(d->data);
	d->lines = NULL;
	d->data = NULL;
	return err;
}

static errcode_t
fdio_read(io_channel ch, unsigned long long block, int count, void *data)
{
	struct fdio *d = fdio_of(ch);
	struct fdio_line *l;
	errcode_t err;

	if (d->lines == NULL || count != 1) {
		err = lines_in(ch, block, fdio_span(ch, count), 1, 0);
		return err != 0 ? err : fdio_read_file(ch, block, count, data);
	}
	l = line_find(d, block);
	if (l == NULL) {
		err = line_take(ch, block, &l);
		if (err == 0)
			err = fdio_read_file(ch, block, 1, line_data(ch, l));
		if (err != 0) {
			if (l != NULL)
				line_drop(l);
			return err;
		}
	}
	l->used = ++d->clock;
	memcpy(data, line_data(ch, l), (size_t)ch->block_size);
	return 0;
}

static errcode_t
fdio_write(io_channel ch, unsigned long long block, int count,
    const void *data)
{
	struct fdio *d = fdio_of(ch);
	struct fdio_line *l;
	errcode_t err;

	if (!d->rw)
		return EXT2_ET_RO_FILSYS;
	if (d->lines == NULL || count != 1) {
		err = lines_in(ch, block, fdio_span(ch, count), 0, 1);
		return err != 0 ? err : fdio_write_file(ch, block, count, data);
	}
	l = line_find(d, block);
	if (l == NULL) {
		err = line_take(ch, block, &l);
		if (err != 0)
			return err;
	}
	l->used = ++d->clock;
	l->dirty = 1;
	memcpy(line_data(ch, l), data, (size_t)ch->block_size);
	return 0;
}

void
ext4_io_cache(struct struct_io_channel *ch)
{
	struct fdio *d;

	if (ch == NULL || ch->manager != ext4_io_manager)
		return;
	d = fdio_of(ch);
	if (d->lines != NULL || !d->rw)
		return;
	d->lines = calloc(FDIO_LINES, sizeof(*d->lines));
	d->data = malloc((size_t)FDIO_LINES * (size_t)ch->block_size);
	if (d->lines == NULL || d->data == NULL) {
		free(d->lines);	/* no cache, only slower */
		free(d->data);
		d->lines = NULL;
		d->data = NULL;
	}
}

void
ext4_io_forget(struct struct_io_channel *ch, unsigned long long block,
    unsigned long long count)
{
	if (ch != NULL && ch->manager == ext4_io_manager)
		(void)lines_in(ch, block, count, 0, 1);
}

/* A new block size: the cache starts again. */
static errcode_t
fdio_set_blksize(io_channel ch, int blksize)
{
	struct fdio *d = fdio_of(ch);
	int on = d->lines != NULL;
	errcode_t err;

	if (blksize <= 0)
		return EXT2_ET_INVALID_ARGUMENT;
	err = fdio_cache_off(ch);
	ch->block_size = blksize;
	if (on)
		ext4_io_cache(ch);
	return err;
}

static errcode_t
fdio_read32(io_channel ch, unsigned long block, int count, void *data)
{
	return fdio_read(ch, block, count, data);
}

static errcode_t
fdio_write32(io_channel ch, unsigned long block, int count, const void *data)
{
	return fdio_write(ch, block, count, data);
}

static errcode_t
fdio_write_byte(io_channel ch, unsigned long offset, int count,
    const void *data)
{
	struct fdio *d = fdio_of(ch);
	unsigned long long bs = (unsigned)ch->block_size;
	errcode_t err;

	if (count < 0)
		return EXT2_ET_INVALID_ARGUMENT;
	err = lines_in(ch, offset / bs, (offset % bs + (unsigned)count +
	    bs - 1) / bs, 1, 1);
	if (err != 0)
		return err;
	return fdio_write_at(d, d->offset + offset, data, count);
}

/* The cache written back, then the durability barrier. */
static errcode_t
fdio_flush(io_channel ch)
{
	struct fdio *d = fdio_of(ch);
	errcode_t err;

	err = lines_in(ch, 0, ~0ULL, 1, 0);
	if (err == 0 && d->rw && fsync(d->fd) < 0)
		err = errno;
	return err;
}

static errcode_t
fdio_set_option(io_channel ch, const char *option, const char *arg)
{
	struct fdio *d = fdio_of(ch);
	unsigned long long v;
	char *end;

	if (strcmp(option, "offset") != 0)
		return EXT2_ET_INVALID_ARGUMENT;
	if (arg == NULL || arg[0] < '0' || arg[0] > '9')
		return EXT2_ET_INVALID_ARGUMENT;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (*end != '\0' || errno != 0 || v > INT64_MAX)
		return EXT2_ET_INVALID_ARGUMENT;
	d->offset = v;
	return 0;
}

static errcode_t
fdio_get_stats(io_channel ch, io_stats *stats)
{
	if (stats != NULL)
		*stats = &fdio_of(ch)->stats;
	return 0;
}

/* A range that reads as zeros and holds no space: a hole. */
static errcode_t
fdio_zeroout(io_channel ch, unsigned long long block, unsigned long long count)
{
	struct fdio *d = fdio_of(ch);
	uint64_t bs = (uint64_t)ch->block_size;

	if (!d->rw)
		return EXT2_ET_RO_FILSYS;
	if (count == 0)
		return 0;
	if (count > (uint64_t)INT64_MAX / bs || block > (uint64_t)INT64_MAX / bs)
		return EXT2_ET_INVALID_ARGUMENT;
	(void)lines_in(ch, block, count, 0, 1);
	if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	    (off_t)(d->offset + block * bs), (off_t)(count * bs)) < 0)
		return errno == EOPNOTSUPP ? EXT2_ET_UNIMPLEMENTED : errno;
	return 0;
}

static errcode_t
fdio_discard(io_channel ch, unsigned long long block, unsigned long long count)
{
	return fdio_zeroout(ch, block, count);
}

static struct struct_io_manager fdio_manager = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "pep fd I/O manager",
	.open = fdio_open,
	.close = fdio_close,
	.set_blksize = fdio_set_blksize,
	.read_blk = fdio_read32,
	.write_blk = fdio_write32,
	.flush = fdio_flush,
	.write_byte = fdio_write_byte,
	.set_option = fdio_set_option,
	.get_stats = fdio_get_stats,
	.read_blk64 = fdio_read,
	.write_blk64 = fdio_write,
	.discard = fdio_discard,
	.zeroout = fdio_zeroout,
};

struct struct_io_manager *ext4_io_manager = &fdio_manager;
