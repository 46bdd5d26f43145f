/*
 * libext2fs I/O over a file descriptor at a byte offset.
 *
 * libext2fs's unix_io opens by path (pep-bake's output is an O_TMPFILE,
 * reachable only as /proc/self/fd/N), fsyncs the file on every open
 * ("previous errors in the block device"), and keeps a write-back cache
 * whose flush fsyncs again. pep-bake writes a fresh temporary file and
 * fsyncs it once when it is complete, so here every read and write goes
 * straight to pread/pwrite on a dup of the caller's descriptor: no cache
 * to keep coherent with the caller's own I/O on the same file, and flush
 * is the caller's fsync, done only when libext2fs asks for one.
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

struct fdio {
	int fd;
	int rw;
	uint64_t offset;
	struct struct_io_stats stats;
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

static errcode_t
fdio_close(io_channel ch)
{
	struct fdio *d = fdio_of(ch);

	if (--ch->refcount > 0)
		return 0;
	close(d->fd);
	free(d);
	free(ch->name);
	free(ch);
	return 0;
}

static errcode_t
fdio_set_blksize(io_channel ch, int blksize)
{
	if (blksize <= 0)
		return EXT2_ET_INVALID_ARGUMENT;
	ch->block_size = blksize;
	return 0;
}

/* pread all of it; past the end of the file reads as a short read. */
static errcode_t
fdio_read(io_channel ch, unsigned long long block, int count, void *data)
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
fdio_write(io_channel ch, unsigned long long block, int count,
    const void *data)
{
	struct fdio *d = fdio_of(ch);

	return fdio_write_at(d, d->offset + block * (uint64_t)ch->block_size,
	    data, fdio_size(ch, count));
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

	if (count < 0)
		return EXT2_ET_INVALID_ARGUMENT;
	return fdio_write_at(d, d->offset + offset, data, count);
}

/* Nothing is buffered here: a flush is only the durability barrier. */
static errcode_t
fdio_flush(io_channel ch)
{
	struct fdio *d = fdio_of(ch);

	if (d->rw && fsync(d->fd) < 0)
		return errno;
	return 0;
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
