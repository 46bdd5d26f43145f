/*
 * Container to sparse raw: walk the virtual disk with img_map, read only
 * what may hold data, and write only non-zero 4 KiB blocks. The output is
 * a fresh file, so everything not written stays a hole and reads as zero.
 *
 * The disk is cut into 8 MiB windows handed out in order to a few worker
 * threads. Readers keep caches (a VHD bitmap, qcow2 L2 tables), so every
 * img_* call is made under one lock; the zero scan and the writes, where
 * the time goes, run in parallel. Runs stored verbatim in the container
 * are read by the workers themselves, outside the lock. Memory use is one
 * 1 MiB buffer per worker, whatever the image size.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "convert.h"

#define CONVERT_CHUNK	(1u << 20)
#define CONVERT_BLOCK	4096u
#define CONVERT_WINDOW	(8u << 20)
#define CONVERT_MAXWORKERS 4

static int
convert_is_zero(const uint8_t *p, size_t len)
{
	static const uint8_t zero[64];

	if (len <= sizeof(zero))
		return memcmp(p, zero, len) == 0;
	return memcmp(p, zero, sizeof(zero)) == 0 &&
	    memcmp(p, p + sizeof(zero), len - sizeof(zero)) == 0;
}

static int
convert_pwrite(int fd, const uint8_t *buf, size_t len, uint64_t off,
    const char *name, struct pep_err *e)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pep_errf(e, errno, "%s: write failed: %s",
			    name, strerror(errno));
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Write the non-zero blocks of buf (virtual offset off), coalesced. */
static int
convert_write_sparse(int fd, const uint8_t *buf, size_t len, uint64_t off,
    const char *name, uint64_t *written, struct pep_err *e)
{
	size_t i = 0, run = 0, bl;
	int rc;

	while (i < len) {
		bl = len - i < CONVERT_BLOCK ? len - i : CONVERT_BLOCK;
		if (!convert_is_zero(buf + i, bl)) {
			i += bl;
			continue;
		}
		if (i > run) {
			rc = convert_pwrite(fd, buf + run, i - run, off + run,
			    name, e);
			if (rc < 0)
				return rc;
			*written += i - run;
		}
		i += bl;
		run = i;
	}
	if (len > run) {
		rc = convert_pwrite(fd, buf + run, len - run, off + run, name,
		    e);
		if (rc < 0)
			return rc;
		*written += len - run;
	}
	return 0;
}

/*
 * A run stored verbatim in the container: read it straight from the
 * container file, outside the reader's lock, so both workers' reads are in
 * flight at once. pread into the worker's buffer, not mmap: a fault per
 * page costs far more than the copy (most of all in a VM whose page
 * faults go to the hypervisor), and mapping and unmapping 2 MiB runs from
 * two threads contends on the address-space lock and shoots down TLBs.
 */
static int
convert_direct(struct img *im, uint8_t *buf, int outfd, const char *outname,
    uint64_t off, uint64_t len, uint64_t foff, uint64_t *written,
    struct pep_err *e)
{
	uint64_t n;
	int rc;

	/* Start reading the whole run now, not a chunk at a time. */
	posix_fadvise(im->fd, (off_t)foff, (off_t)len, POSIX_FADV_WILLNEED);
	while (len > 0) {
		n = len < CONVERT_CHUNK ? len : CONVERT_CHUNK;
		rc = img_read_file(im, buf, (size_t)n, foff, "a data run", e);
		if (rc == 0)
			rc = convert_write_sparse(outfd, buf, (size_t)n, off,
			    outname, written, e);
		if (rc < 0)
			return rc;
		off += n;
		foff += n;
		len -= n;
	}
	return 0;
}

struct convert_job {
	struct img *im;
	int outfd;
	const char *outname;
	pthread_mutex_t lock;	/* guards im, next, rc, err */
	uint64_t next;		/* start of the next window to hand out */
	int rc;
	struct pep_err err;
	atomic_uint_fast64_t done;
	atomic_uint_fast64_t read;
	atomic_uint_fast64_t written;
	struct progress *p;
};

struct convert_worker {
	struct convert_job *job;
	uint8_t *buf;
	struct pep_err e;
	int main;		/* the calling thread: it draws progress */
};

/*
 * Under the lock: classify the run at off and, for data, either find it
 * verbatim in the container (*direct = 1, *foff) or read it into buf.
 */
static int
convert_fetch(struct convert_worker *w, uint64_t off, uint64_t *len,
    int *direct, uint64_t *foff)
{
	struct img *im = w->job->im;
	int kind;

	*direct = 0;
	kind = img_map(im, off, len, &w->e);
	if (kind != IMG_DATA)
		return kind;
	if (img_direct(im, off, len, foff)) {
		*direct = 1;
		return kind;
	}
	if (*len > CONVERT_CHUNK)
		*len = CONVERT_CHUNK;
	if (img_pread(im, w->buf, (size_t)*len, off, &w->e) < 0)
		return w->e.code ? w->e.code : -EIO;
	return kind;
}

static int
convert_step(struct convert_worker *w, uint64_t off, uint64_t *len)
{
	struct convert_job *j = w->job;
	uint64_t foff, wr = 0;
	int kind, direct, rc = 0;

	pthread_mutex_lock(&j->lock);
	kind = convert_fetch(w, off, len, &direct, &foff);
	pthread_mutex_unlock(&j->lock);
	if (kind < 0)
		return kind;
	if (kind == IMG_ZERO)
		return 0;
	if (direct)
		rc = convert_direct(j->im, w->buf, j->outfd, j->outname, off,
		    *len, foff, &wr, &w->e);
	else
		rc = convert_write_sparse(j->outfd, w->buf, (size_t)*len, off,
		    j->outname, &wr, &w->e);
	atomic_fetch_add(&j->read, *len);
	atomic_fetch_add(&j->written, wr);
	return rc;
}

static int
convert_window(struct convert_worker *w, uint64_t off, uint64_t end)
{
	struct convert_job *j = w->job;
	uint64_t len;
	int rc;

	while (off < end) {
		len = end - off;
		rc = convert_step(w, off, &len);
		if (rc < 0)
			return rc;
		off += len;
		atomic_fetch_add(&j->done, len);
		if (w->main)
			progress_update(j->p, atomic_load(&j->done));
	}
	return 0;
}

static void *
convert_worker_run(void *arg)
{
	struct convert_worker *w = arg;
	struct convert_job *j = w->job;
	uint64_t off, end;
	int rc;

	for (;;) {
		pthread_mutex_lock(&j->lock);
		off = j->next;
		if (j->rc != 0 || off >= j->im->virtual_size) {
			pthread_mutex_unlock(&j->lock);
			break;
		}
		j->next += CONVERT_WINDOW;
		pthread_mutex_unlock(&j->lock);
		end = off + CONVERT_WINDOW;
		if (end > j->im->virtual_size)
			end = j->im->virtual_size;
		rc = convert_window(w, off, end);
		/*
		 * Start writing the finished window out now, so the final
		 * fsync finds little left to do: disk writes overlap reads.
		 */
		if (rc == 0)
			sync_file_range(j->outfd, (off64_t)off,
			    (off64_t)(end - off), SYNC_FILE_RANGE_WRITE);
		if (rc < 0) {
			pthread_mutex_lock(&j->lock);
			if (j->rc == 0) {
				j->rc = rc;
				j->err = w->e;
			}
			pthread_mutex_unlock(&j->lock);
			break;
		}
	}
	return NULL;
}

static int
convert_nworkers(uint64_t size)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1 || size <= CONVERT_WINDOW)
		n = 1;
	return n > CONVERT_MAXWORKERS ? CONVERT_MAXWORKERS : (int)n;
}

static int
convert_workers(struct convert_job *j, struct convert_worker *w, int n)
{
	pthread_t tid[CONVERT_MAXWORKERS];
	int i, started = 0;

	for (i = 0; i < n; i++) {
		w[i].job = j;
		w[i].main = i == 0;
		w[i].buf = malloc(CONVERT_CHUNK);
		if (w[i].buf == NULL)
			return pep_errf(&j->err, ENOMEM, "out of memory");
	}
	for (i = 1; i < n; i++) {
		if (pthread_create(&tid[i], NULL, convert_worker_run,
		    &w[i]) != 0)
			break;
		started = i;
	}
	convert_worker_run(&w[0]);
	for (i = 1; i <= started; i++)
		pthread_join(tid[i], NULL);
	return j->rc;
}

int
convert_run(struct img *im, int outfd, const char *outname,
    struct progress *p, struct convert_stats *st, struct pep_err *e)
{
	struct convert_worker w[CONVERT_MAXWORKERS];
	struct convert_job j;
	int i, n = convert_nworkers(im->virtual_size), rc;

	memset(&j, 0, sizeof(j));
	memset(w, 0, sizeof(w));
	j.im = im;
	j.outfd = outfd;
	j.outname = outname;
	j.p = p;
	pthread_mutex_init(&j.lock, NULL);
	progress_begin(p, "convert", im->virtual_size);
	rc = convert_workers(&j, w, n);
	for (i = 0; i < n; i++)
		free(w[i].buf);
	pthread_mutex_destroy(&j.lock);
	progress_end(p);
	st->bytes_read = atomic_load(&j.read);
	st->bytes_written = atomic_load(&j.written);
	if (rc < 0) {
		if (e != NULL)
			*e = j.err;
		return rc;
	}
	if (ftruncate(outfd, (off_t)im->virtual_size) < 0)
		return pep_errf(e, errno, "%s: cannot set size: %s", outname,
		    strerror(errno));
	return 0;
}
