/*
 * Container to sparse raw: walk the virtual disk with img_map, read only
 * what may hold data, and write only non-zero 4 KiB blocks. The output is
 * a fresh file, so everything not written stays a hole and reads as zero.
 *
 * The disk is cut into 8 MiB windows handed out in order to twelve worker
 * threads. Readers keep caches (a VHD bitmap, qcow2 L2 tables), so every
 * img_* call is made under one lock; the zero scan and the writes, where
 * the time goes, run in parallel, one worker per CPU at a time. Runs
 * stored verbatim in the container are handled by the workers themselves,
 * outside the lock, and where the kernel can, it moves them without
 * pep-bake reading them (copy offload, below): such a worker waits on
 * the disk, not a CPU, and all twelve keep a copy in flight, each reading
 * through its own open file description of the input. Memory use is one
 * 1 MiB buffer per worker, whatever the image size.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "../common/mem.h"
#include "convert.h"

#define CONVERT_CHUNK	(1u << 20)
#define CONVERT_BLOCK	4096u
#define CONVERT_WINDOW	(8u << 20)
#define CONVERT_MAXWORKERS 12
#define CONVERT_SAMPLE	(512u << 10)	/* see convert_copy */

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
		if (!mem_is_zero(buf + i, bl)) {
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
 * Copy offload: verbatim runs go to copy_file_range(2), as qemu-img
 * convert -C does, so pep-bake never reads them. What the kernel then
 * does depends on the output's filesystem, and so does the policy:
 *
 * - It shares extents (XFS with reflink, btrfs): the output's blocks
 *   become the input's, no data moves and no space is taken (a 1 GiB
 *   disk with 534 MiB of data bakes in 0.02-0.05 s, 1.7 MB new). Zero
 *   blocks inside the input's data runs are shared too, not left as holes:
 *   they cost nothing new, and finding them would mean reading everything
 *   the sharing avoids reading. The input's holes stay holes (img_map).
 *   Sharing needs block-aligned offsets and lengths, the run at the same
 *   offset within a block in both files: the unaligned head and tail go
 *   through userspace, and a run that cannot be aligned (a dynamic VHD's
 *   blocks sit 512 bytes after their bitmap) goes through it whole.
 * - It copies (ext4, tmpfs): one copy in the kernel instead of two and
 *   a zero scan through userspace; on ext4 a cold-cache bake of that disk
 *   took 0.39-0.49 s against 0.54-0.59 s (medians). But it writes the
 *   zero blocks inside data runs that the userspace path leaves as holes.
 *   A sparse input (written by qemu-img, cp, mkfs) has almost none; a
 *   downloaded, fully allocated one is mostly zeros, and there the kernel
 *   copy was slower (0.9-1.1 s against 0.65 s) and allocated twice the
 *   space. So the data is sampled: see convert_copy.
 * - It refuses (input and output on different filesystems, an old
 *   kernel): the userspace path, for the rest of the job.
 *
 * Which of these it is, the first aligned run finds out: FICLONERANGE
 * shares it or does nothing at all (so asking costs no copy), and when
 * it does not, copy_file_range copies or refuses.
 *
 * PEP_NO_COPY_RANGE=1 in the environment turns the offload off (for
 * tests and benchmarks that compare the two paths).
 */
enum convert_offload {
	CONVERT_OFF_PROBE,	/* unknown: the first aligned run asks */
	CONVERT_OFF_SHARE,	/* copy_file_range shares input extents */
	CONVERT_OFF_COPY,	/* copy_file_range copies, where sampled */
	CONVERT_OFF_NONE	/* userspace only */
};

struct convert_job {
	struct img *im;
	int outfd;
	const char *outname;
	uint64_t blksz;		/* the output filesystem's block size */
	pthread_mutex_t lock;	/* guards im, next, rc, err */
	sem_t cpus;		/* workers in the userspace path at once */
	uint64_t next;		/* start of the next window to hand out */
	int rc;
	struct pep_err err;
	atomic_int offload;	/* enum convert_offload */
	atomic_uint_fast64_t done;
	atomic_uint_fast64_t read;
	atomic_uint_fast64_t written;
	atomic_uint_fast64_t shared;
	struct progress *p;
};

struct convert_worker {
	struct convert_job *job;
	uint8_t *buf;
	int infd;		/* the input, opened again: see convert_workers */
	struct pep_err e;
	uint64_t sample_left;	/* verbatim bytes still to sample */
	uint64_t sample_zero;	/* zero bytes the sample left as holes */
	int copy_ok;		/* the sample says: the kernel may copy */
	int main;		/* the calling thread: it draws progress */
};

static void
convert_cpu_get(struct convert_job *j)
{
	while (sem_wait(&j->cpus) < 0 && errno == EINTR)
		continue;
}

/*
 * A run stored verbatim in the container, through userspace: read it
 * straight from the container file, outside the reader's lock, so both
 * workers' reads are in flight at once. pread into the worker's buffer,
 * not mmap: a fault per page costs far more than the copy (most of all in
 * a VM whose page faults go to the hypervisor), and mapping and unmapping
 * 2 MiB runs from two threads contends on the address-space lock and
 * shoots down TLBs.
 */
static int
convert_read_write(struct convert_worker *w, uint64_t off, uint64_t len,
    uint64_t foff, uint64_t *written)
{
	struct convert_job *j = w->job;
	uint64_t n;
	int rc;

	if (len == 0)
		return 0;	/* (length 0 would advise the whole file) */
	/* Start reading the whole run now, not a chunk at a time. */
	posix_fadvise(w->infd, (off_t)foff, (off_t)len, POSIX_FADV_WILLNEED);
	while (len > 0) {
		n = len < CONVERT_CHUNK ? len : CONVERT_CHUNK;
		rc = img_read_fd(j->im, w->infd, w->buf, (size_t)n, foff,
		    "a data run", &w->e);
		if (rc == 0)
			rc = convert_write_sparse(j->outfd, w->buf, (size_t)n,
			    off, j->outname, written, &w->e);
		if (rc < 0)
			return rc;
		off += n;
		foff += n;
		len -= n;
	}
	return 0;
}

/* A verbatim run through userspace, one worker per CPU at a time. */
static int
convert_user(struct convert_worker *w, uint64_t off, uint64_t len,
    uint64_t foff, uint64_t *written)
{
	struct convert_job *j = w->job;
	int rc;

	if (len == 0)
		return 0;
	convert_cpu_get(j);
	rc = convert_read_write(w, off, len, foff, written);
	sem_post(&j->cpus);
	return rc;
}

/* The kernel will not do it for this pair of files: stop asking. */
static int
convert_refused(int err)
{
	return err == EXDEV || err == EOPNOTSUPP || err == ENOSYS ||
	    err == EINVAL;
}

/* 1 if FICLONERANGE shared the run (the job shares from now on). */
static int
convert_probe(struct convert_job *j, uint64_t off, uint64_t len,
    uint64_t foff)
{
	struct file_clone_range fcr;
	int mode = CONVERT_OFF_PROBE;

	fcr.src_fd = j->im->fd;
	fcr.src_offset = foff;
	fcr.src_length = len;
	fcr.dest_offset = off;
	if (ioctl(j->outfd, FICLONERANGE, &fcr) == 0) {
		atomic_store(&j->offload, CONVERT_OFF_SHARE);
		return 1;
	}
	/* Perhaps the kernel copies: copy_file_range will say. */
	atomic_compare_exchange_strong(&j->offload, &mode, CONVERT_OFF_COPY);
	return 0;
}

/*
 * copy_file_range [off, off + len) from foff: how much the kernel did.
 * Any failure leaves the rest of the run to userspace; a refusal, the
 * rest of the job.
 */
static uint64_t
convert_copy_range(struct convert_worker *w, uint64_t off, uint64_t len,
    uint64_t foff)
{
	struct convert_job *j = w->job;
	loff_t in = (loff_t)foff, out = (loff_t)off;
	uint64_t left = len;
	ssize_t n;

	while (left > 0) {
		n = copy_file_range(w->infd, &in, j->outfd, &out,
		    (size_t)left, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && convert_refused(errno))
				atomic_store(&j->offload, CONVERT_OFF_NONE);
			break;
		}
		left -= (uint64_t)n;
	}
	return len - left;
}

/*
 * The kernel copies (no sharing). In each window, the first 512 KiB of
 * verbatim data go through userspace as a sample, which counts the zero
 * blocks it leaves as holes; if at most one block in 16 was zero, the
 * kernel copies the rest of the window's verbatim data, else userspace
 * does. The decision is the window's own: a disk's data and free space
 * alternate over a few MiB, and a sample taken one window earlier copied
 * whole windows of zeros. Sampling costs the userspace path on 1/16 of
 * the data.
 */
static int
convert_copy(struct convert_worker *w, uint64_t off, uint64_t len,
    uint64_t foff, uint64_t *written)
{
	struct convert_job *j = w->job;
	uint64_t n = len < w->sample_left ? len : w->sample_left;
	uint64_t w0 = *written;
	int rc;

	rc = convert_user(w, off, n, foff, written);
	if (rc < 0)
		return rc;
	w->sample_left -= n;
	w->sample_zero += n - (*written - w0);
	if (n > 0 && w->sample_left == 0)
		w->copy_ok = w->sample_zero * 16 <= CONVERT_SAMPLE;
	off += n;
	foff += n;
	len -= n;
	/*
	 * No POSIX_FADV_WILLNEED here, unlike the userspace path: on ext4,
	 * in 15 interleaved cold-cache rounds, bakes took 1.14x qemu-img
	 * convert's time without it and 1.36x with it.
	 */
	if (len > 0 && w->copy_ok &&
	    atomic_load(&j->offload) == CONVERT_OFF_COPY) {
		n = convert_copy_range(w, off, len, foff);
		*written += n;
		off += n;
		foff += n;
		len -= n;
	}
	return convert_user(w, off, len, foff, written);
}

/*
 * The block-aligned middle of a run: how much of it is now shared (0 when
 * the filesystem does not share).
 */
static uint64_t
convert_share(struct convert_worker *w, uint64_t off, uint64_t len,
    uint64_t foff)
{
	struct convert_job *j = w->job;
	uint64_t n = 0;
	int mode = atomic_load(&j->offload);

	if (mode == CONVERT_OFF_PROBE && convert_probe(j, off, len, foff))
		n = len;
	else if (mode == CONVERT_OFF_SHARE)
		n = convert_copy_range(w, off, len, foff);
	atomic_fetch_add(&j->shared, n);
	return n;
}

/* A verbatim run: shared, copied by the kernel, or through userspace. */
static int
convert_direct(struct convert_worker *w, uint64_t off, uint64_t len,
    uint64_t foff, uint64_t *written)
{
	struct convert_job *j = w->job;
	uint64_t bs = j->blksz, head = (bs - off % bs) % bs, mid = 0, n;
	int mode = atomic_load(&j->offload), rc;

	if (mode == CONVERT_OFF_COPY)
		return convert_copy(w, off, len, foff, written);
	if (mode != CONVERT_OFF_NONE && off % bs == foff % bs && head < len)
		mid = (len - head) / bs * bs;
	if (mid == 0)
		return convert_user(w, off, len, foff, written);
	rc = convert_user(w, off, head, foff, written);
	if (rc < 0)
		return rc;
	n = head + convert_share(w, off + head, mid, foff + head);
	if (atomic_load(&j->offload) == CONVERT_OFF_COPY)
		return convert_copy(w, off + n, len - n, foff + n, written);
	return convert_user(w, off + n, len - n, foff + n, written);
}

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
convert_step(struct convert_worker *w, uint64_t off, uint64_t *len,
    uint64_t *written)
{
	struct convert_job *j = w->job;
	uint64_t foff;
	int kind, direct, rc = 0;

	pthread_mutex_lock(&j->lock);
	kind = convert_fetch(w, off, len, &direct, &foff);
	pthread_mutex_unlock(&j->lock);
	if (kind < 0)
		return kind;
	if (kind == IMG_ZERO)
		return 0;
	if (direct) {
		rc = convert_direct(w, off, *len, foff, written);
	} else {
		convert_cpu_get(j);
		rc = convert_write_sparse(j->outfd, w->buf, (size_t)*len, off,
		    j->outname, written, &w->e);
		sem_post(&j->cpus);
	}
	atomic_fetch_add(&j->read, *len);
	return rc;
}

/*
 * One window. When it is done, start writing out what it wrote, so the
 * final fsync finds little left to do and disk writes overlap reads (a
 * window whose data was all shared has nothing to write out).
 */
static int
convert_window(struct convert_worker *w, uint64_t off, uint64_t end)
{
	struct convert_job *j = w->job;
	uint64_t start = off, len, wr = 0;
	int rc = 0;

	w->sample_left = CONVERT_SAMPLE;
	w->sample_zero = 0;
	w->copy_ok = 0;
	while (off < end && rc == 0) {
		len = end - off;
		rc = convert_step(w, off, &len, &wr);
		off += len;
		atomic_fetch_add(&j->done, len);
		if (w->main)
			progress_update(j->p, atomic_load(&j->done));
	}
	atomic_fetch_add(&j->written, wr);
	if (rc == 0 && wr > 0)
		sync_file_range(j->outfd, (off64_t)start,
		    (off64_t)(end - start), SYNC_FILE_RANGE_WRITE);
	return rc;
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

/*
 * Twelve workers, but the userspace path one per CPU at a time: the
 * kernel's copies wait on the disk, and the more are in flight, the
 * faster a cold input is read (ext4, the 1 GiB disks of bench-copy, 9
 * interleaved rounds: 0.455 s with four workers sharing one file
 * description, 0.414 s with four of their own, 0.400 s with eight; in
 * two more runs twelve took 0.401-0.410 s against eight's 0.421-0.433 s;
 * qemu-img convert keeps eight 2 MiB reads in flight), while workers
 * reading and scanning beyond the CPUs were slower (four on two CPUs:
 * 2.0x against 1.4x qemu-img's time).
 */
static int
convert_nworkers(uint64_t size, unsigned int *ncpu)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	*ncpu = n > CONVERT_MAXWORKERS ? CONVERT_MAXWORKERS : (unsigned int)n;
	return size <= CONVERT_WINDOW ? 1 : CONVERT_MAXWORKERS;
}

/*
 * Each worker reads the input through an open file description of its
 * own, so the kernel keeps a readahead window per worker: through one
 * shared description, workers reading different windows look like one
 * reader seeking about, and readahead stays small (numbers at
 * convert_nworkers). If /proc is not there, the shared one.
 */
static int
convert_reopen(int fd)
{
	char path[64];
	int nfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_RDONLY | O_CLOEXEC);
	return nfd < 0 ? fd : nfd;
}

static void
convert_workers_free(struct convert_job *j, struct convert_worker *w, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		free(w[i].buf);
		if (w[i].job != NULL && w[i].infd != j->im->fd)
			close(w[i].infd);
	}
}

static int
convert_workers(struct convert_job *j, struct convert_worker *w, int n)
{
	pthread_t tid[CONVERT_MAXWORKERS];
	int i, started = 0;

	for (i = 0; i < n; i++) {
		w[i].job = j;
		w[i].main = i == 0;
		w[i].infd = convert_reopen(j->im->fd);
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

/*
 * Sharing needs offsets and lengths that are multiples of the output
 * filesystem's block (its f_bsize; 4 KiB if that looks wrong).
 */
static void
convert_offload_init(struct convert_job *j)
{
	const char *off = getenv("PEP_NO_COPY_RANGE");
	struct statfs sf;

	j->blksz = CONVERT_BLOCK;
	if (fstatfs(j->outfd, &sf) == 0 && sf.f_bsize >= 512 &&
	    (uint64_t)sf.f_bsize <= CONVERT_WINDOW &&
	    (sf.f_bsize & (sf.f_bsize - 1)) == 0)
		j->blksz = (uint64_t)sf.f_bsize;
	atomic_init(&j->offload, off != NULL && strcmp(off, "1") == 0 ?
	    CONVERT_OFF_NONE : CONVERT_OFF_PROBE);
}

int
convert_run(struct img *im, int outfd, const char *outname,
    struct progress *p, struct convert_stats *st, struct pep_err *e)
{
	struct convert_worker w[CONVERT_MAXWORKERS];
	struct convert_job j;
	unsigned int ncpu;
	int n = convert_nworkers(im->virtual_size, &ncpu), rc;

	memset(&j, 0, sizeof(j));
	memset(w, 0, sizeof(w));
	j.im = im;
	j.outfd = outfd;
	j.outname = outname;
	j.p = p;
	convert_offload_init(&j);
	/*
	 * The final size first: workers finish windows out of order, and on
	 * XFS every write past the end of the file preallocated beyond it,
	 * so the holes between windows filled with unwritten extents (1.9
	 * times the data allocated); no write extends the file now.
	 */
	if (ftruncate(outfd, (off_t)im->virtual_size) < 0)
		return pep_errf(e, errno, "%s: cannot set size: %s", outname,
		    strerror(errno));
	pthread_mutex_init(&j.lock, NULL);
	sem_init(&j.cpus, 0, ncpu);
	progress_begin(p, "convert", im->virtual_size);
	rc = convert_workers(&j, w, n);
	convert_workers_free(&j, w, n);
	pthread_mutex_destroy(&j.lock);
	sem_destroy(&j.cpus);
	/* only the main worker draws: the others' last windows count now */
	progress_update(p, atomic_load(&j.done));
	progress_end(p);
	st->bytes_shared = atomic_load(&j.shared);
	st->bytes_read = atomic_load(&j.read) - st->bytes_shared;
	st->bytes_written = atomic_load(&j.written);
	if (rc < 0) {
		if (e != NULL)
			*e = j.err;
		return rc;
	}
	return 0;
}
