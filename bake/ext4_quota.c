/*
 * Quota files of an ext4 filesystem with the quota (and project) feature:
 * the kernel's "vfsv1" format (quota tree, v2 revision 1), one hidden
 * file per type, which e2fsck checks against the usage it counts itself.
 * pep-bake changes usage whenever it writes into the image, so before the
 * filesystem is closed the usage is counted again, as e2fsprogs counts it
 * (every in-use inode from the root and the first normal inode on, except
 * the project quota and orphan files: its i_blocks and one inode, charged
 * to its uid, gid and project id), merged with the limits and grace times
 * the old file held, and the file is written anew.
 *
 * The file format (read for understanding from e2fsprogs' lib/support and
 * the kernel's fs/quota/quota_tree.c): 1 KiB blocks; block 0 holds the
 * header and the info; block 1 is the root of a radix tree of depth 4 on
 * the id's bytes (most significant first), each tree block 256 __le32
 * block numbers; the last level points at data blocks holding up to 14
 * 72-byte entries after a 16-byte header. An all-zero entry is a free
 * slot, so an entry that would be all zero carries itime 1.
 *
 * quota_parse() reads a file from memory (untrusted: every block number
 * is checked, each tree block may be reached once); quota_build() writes
 * one deterministically (ids in order, blocks allocated as met).
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "../common/vec.h"
#include "ext4_priv.h"

#define QT_BLK		1024
#define QT_TREEOFF	1
#define QT_DEPTH	4
#define QT_REFS		(QT_BLK / 4)
#define QT_HDR		16
#define QT_PER_BLK	((QT_BLK - QT_HDR) / (int)sizeof(struct qt_entry_disk))
#define QT_FILE_MAX	(256u << 20)	/* ~3.6 million ids */
#define QT_VERSION	1
#define QT_GRACE	604800	/* a week: the kernel's default */

static const uint32_t qt_magic[QUOTA_NTYPES] = {
	0xd9c01f11,	/* user */
	0xd9c01927,	/* group */
	0xd9c03f14,	/* project */
};

struct qt_header_disk {
	uint32_t magic;
	uint32_t version;
	uint32_t bgrace;
	uint32_t igrace;
	uint32_t flags;
	uint32_t blocks;	/* blocks in the file */
	uint32_t free_blk;	/* first free block (0: none) */
	uint32_t free_entry;	/* first data block with a free slot */
} __attribute__((packed));

struct qt_dblock_disk {
	uint32_t next_free;
	uint32_t prev_free;
	uint16_t entries;
	uint16_t pad1;
	uint32_t pad2;
} __attribute__((packed));

struct qt_entry_disk {
	uint32_t id;
	uint32_t pad;
	uint64_t ihardlimit;
	uint64_t isoftlimit;
	uint64_t curinodes;
	uint64_t bhardlimit;
	uint64_t bsoftlimit;
	uint64_t curspace;
	uint64_t btime;
	uint64_t itime;
} __attribute__((packed));

_Static_assert(sizeof(struct qt_entry_disk) == 72, "quota entry");
_Static_assert(QT_PER_BLK == 14, "entries per block");

void
quota_file_free(struct quota_file *qf)
{
	free(qf->ent);
	memset(qf, 0, sizeof(*qf));
}

static int
qt_push(struct quota_file *qf, const struct quota_entry *q)
{
	if (vec_room((void **)&qf->ent, qf->n, &qf->cap,
	    sizeof(*qf->ent)) < 0)
		return -ENOMEM;
	qf->ent[qf->n++] = *q;
	return 0;
}

static int
qt_cmp(const void *a, const void *b)
{
	const struct quota_entry *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* ------------------------------------------------------------ reading */

struct qt_reader {
	const uint8_t *buf;
	uint32_t nblocks;
	uint8_t *seen;		/* per block: 1 tree, 2 data */
	struct quota_file *qf;
	const char *name;
	struct pep_err *e;
};

static int
qt_bad(struct qt_reader *rd, uint32_t blk, const char *what)
{
	return pep_errf(rd->e, PEP_ECORRUPT, "%s: quota file block %u: %s "
	    "(run e2fsck)", rd->name, blk, what);
}

static int
qt_read_entry(struct qt_reader *rd, const struct qt_entry_disk *d)
{
	static const struct qt_entry_disk zero;
	struct quota_entry q;

	if (memcmp(d, &zero, sizeof(zero)) == 0)
		return 0;	/* a free slot */
	memset(&q, 0, sizeof(q));
	q.id = le32toh(d->id);
	q.ihard = le64toh(d->ihardlimit);
	q.isoft = le64toh(d->isoftlimit);
	q.inodes = le64toh(d->curinodes);
	q.bhard = le64toh(d->bhardlimit);
	q.bsoft = le64toh(d->bsoftlimit);
	q.space = le64toh(d->curspace);
	q.btime = le64toh(d->btime);
	q.itime = le64toh(d->itime);
	if (q.itime == 1 && q.id == 0 && q.ihard == 0 && q.isoft == 0 &&
	    q.inodes == 0 && q.bhard == 0 && q.bsoft == 0 && q.space == 0 &&
	    q.btime == 0)
		q.itime = 0;	/* the all-zero escape */
	return qt_push(rd->qf, &q) < 0 ?
	    pep_errf(rd->e, ENOMEM, "out of memory") : 0;
}

static int
qt_read_data(struct qt_reader *rd, uint32_t blk)
{
	const uint8_t *b = rd->buf + (size_t)blk * QT_BLK;
	struct qt_entry_disk d;
	int i, rc;

	if (rd->seen[blk] == 2)
		return 0;	/* several ids share a data block */
	if (rd->seen[blk] != 0)
		return qt_bad(rd, blk, "is both a tree and a data block");
	rd->seen[blk] = 2;
	for (i = 0; i < QT_PER_BLK; i++) {
		memcpy(&d, b + QT_HDR + (size_t)i * sizeof(d), sizeof(d));
		rc = qt_read_entry(rd, &d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
qt_read_tree(struct qt_reader *rd, uint32_t blk, int depth)
{
	const uint8_t *b;
	uint32_t ref;
	int i, rc;

	if (rd->seen[blk] != 0)
		return qt_bad(rd, blk, "is reached twice in the tree");
	rd->seen[blk] = 1;
	b = rd->buf + (size_t)blk * QT_BLK;
	for (i = 0; i < QT_REFS; i++) {
		memcpy(&ref, b + (size_t)i * 4, 4);
		ref = le32toh(ref);
		if (ref == 0)
			continue;
		if (ref <= QT_TREEOFF || ref >= rd->nblocks)
			return qt_bad(rd, blk, "holds a bad block number");
		if (depth + 1 < QT_DEPTH)
			rc = qt_read_tree(rd, ref, depth + 1);
		else
			rc = qt_read_data(rd, ref);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
qt_check_dups(struct quota_file *qf, const char *name, struct pep_err *e)
{
	size_t i;

	if (qf->n == 0)
		return 0;
	qsort(qf->ent, qf->n, sizeof(qf->ent[0]), qt_cmp);
	for (i = 1; i < qf->n; i++)
		if (qf->ent[i].id == qf->ent[i - 1].id)
			return pep_errf(e, PEP_ECORRUPT, "%s: quota file has "
			    "id %u twice (run e2fsck)", name, qf->ent[i].id);
	return 0;
}

int
quota_parse(const uint8_t *buf, size_t len, int type, const char *name,
    struct quota_file *qf, struct pep_err *e)
{
	struct qt_reader rd = { buf, 0, NULL, qf, name, e };
	struct qt_header_disk h;
	int rc;

	memset(qf, 0, sizeof(*qf));
	qf->bgrace = qf->igrace = QT_GRACE;
	if (len == 0)
		return 0;	/* never written: defaults */
	if (type < 0 || type >= QUOTA_NTYPES || len > QT_FILE_MAX ||
	    len < 2 * QT_BLK)
		return pep_errf(e, PEP_ECORRUPT, "%s: quota file of %zu bytes "
		    "is too %s (run e2fsck)", name, len, len < 2 * QT_BLK ?
		    "short" : "long");
	memcpy(&h, buf, sizeof(h));
	if (le32toh(h.magic) != qt_magic[type] ||
	    le32toh(h.version) != QT_VERSION)
		return pep_errf(e, PEP_EUNSUPPORTED, "%s: not a vfsv1 quota "
		    "file (magic 0x%08x, version %u; run e2fsck)", name,
		    le32toh(h.magic), le32toh(h.version));
	qf->bgrace = le32toh(h.bgrace);
	qf->igrace = le32toh(h.igrace);
	qf->flags = le32toh(h.flags);
	rd.nblocks = (uint32_t)(len / QT_BLK);
	rd.seen = calloc(rd.nblocks, 1);
	if (rd.seen == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	rd.seen[0] = 1;
	rc = qt_read_tree(&rd, QT_TREEOFF, 0);
	free(rd.seen);
	if (rc == 0)
		rc = qt_check_dups(qf, name, e);
	if (rc < 0)
		quota_file_free(qf);
	return rc;
}

/* ------------------------------------------------------------ writing */

struct qt_writer {
	uint8_t *buf;
	uint32_t nblocks;
	uint32_t cap;
	uint32_t data;		/* the data block being filled, 0: none */
	int used;		/* entries in it */
};

static uint32_t
qt_new_block(struct qt_writer *w)
{
	uint8_t *n;
	uint32_t cap;

	if (w->nblocks == w->cap) {
		cap = w->cap * 2;
		n = realloc(w->buf, (size_t)cap * QT_BLK);
		if (n == NULL)
			return 0;
		memset(n + (size_t)w->cap * QT_BLK, 0,
		    (size_t)(cap - w->cap) * QT_BLK);
		w->buf = n;
		w->cap = cap;
	}
	return w->nblocks++;
}

static uint32_t
qt_get_ref(const struct qt_writer *w, uint32_t blk, unsigned idx)
{
	uint32_t v;

	memcpy(&v, w->buf + (size_t)blk * QT_BLK + idx * 4, 4);
	return le32toh(v);
}

static void
qt_set_ref(struct qt_writer *w, uint32_t blk, unsigned idx, uint32_t ref)
{
	uint32_t v = htole32(ref);

	memcpy(w->buf + (size_t)blk * QT_BLK + idx * 4, &v, 4);
}

static void
qt_put_entry(struct qt_writer *w, const struct quota_entry *q)
{
	static const struct qt_entry_disk zero;
	struct qt_entry_disk d;
	struct qt_dblock_disk h;
	uint8_t *b = w->buf + (size_t)w->data * QT_BLK;

	d.id = htole32(q->id);
	d.pad = 0;
	d.ihardlimit = htole64(q->ihard);
	d.isoftlimit = htole64(q->isoft);
	d.curinodes = htole64(q->inodes);
	d.bhardlimit = htole64(q->bhard);
	d.bsoftlimit = htole64(q->bsoft);
	d.curspace = htole64(q->space);
	d.btime = htole64(q->btime);
	d.itime = htole64(q->itime);
	if (memcmp(&d, &zero, sizeof(d)) == 0)
		d.itime = htole64(1);
	memcpy(b + QT_HDR + (size_t)w->used * sizeof(d), &d, sizeof(d));
	w->used++;
	memset(&h, 0, sizeof(h));
	h.entries = htole16((uint16_t)w->used);
	memcpy(b, &h, sizeof(h));
}

/* Put q's entry in the data block being filled and route its id to it. */
static int
qt_insert(struct qt_writer *w, const struct quota_entry *q)
{
	uint32_t blk = QT_TREEOFF, next;
	unsigned idx;
	int depth;

	if (w->data == 0 || w->used == QT_PER_BLK) {
		w->data = qt_new_block(w);
		w->used = 0;
		if (w->data == 0)
			return -ENOMEM;
	}
	for (depth = 0; depth < QT_DEPTH - 1; depth++) {
		idx = (q->id >> ((QT_DEPTH - 1 - depth) * 8)) & 0xff;
		next = qt_get_ref(w, blk, idx);
		if (next == 0) {
			next = qt_new_block(w);
			if (next == 0)
				return -ENOMEM;
			qt_set_ref(w, blk, idx, next);
		}
		blk = next;
	}
	qt_set_ref(w, blk, q->id & 0xff, w->data);
	qt_put_entry(w, q);
	return 0;
}

int
quota_build(const struct quota_file *qf, int type, uint8_t **out,
    size_t *len)
{
	struct qt_writer w = { NULL, 2, 8, 0, 0 };
	struct qt_header_disk h;
	size_t i;

	*out = NULL;
	*len = 0;
	if (type < 0 || type >= QUOTA_NTYPES)
		return -EINVAL;
	w.buf = calloc(w.cap, QT_BLK);
	if (w.buf == NULL)
		return -ENOMEM;
	for (i = 0; i < qf->n; i++) {
		if (qt_insert(&w, &qf->ent[i]) < 0) {
			free(w.buf);
			return -ENOMEM;
		}
	}
	memset(&h, 0, sizeof(h));
	h.magic = htole32(qt_magic[type]);
	h.version = htole32(QT_VERSION);
	h.bgrace = htole32(qf->bgrace);
	h.igrace = htole32(qf->igrace);
	h.flags = htole32(qf->flags);
	h.blocks = htole32(w.nblocks);
	h.free_entry = htole32(w.data != 0 && w.used < QT_PER_BLK ? w.data :
	    0);
	memcpy(w.buf, &h, sizeof(h));
	*out = w.buf;
	*len = (size_t)w.nblocks * QT_BLK;
	return 0;
}

/* ------------------------------------------------ usage in the image */

/* One inode's charge to one id; sorted and summed per type. */
struct qt_use {
	uint32_t id;
	uint64_t space;
};

struct qt_uses {
	struct qt_use *u;
	size_t n, cap;
};

static int
qt_use_add(struct qt_uses *c, uint32_t id, uint64_t space)
{
	if (vec_room((void **)&c->u, c->n, &c->cap, sizeof(*c->u)) < 0)
		return -ENOMEM;
	c->u[c->n].id = id;
	c->u[c->n].space = space;
	c->n++;
	return 0;
}

static int
qt_use_cmp(const void *a, const void *b)
{
	const struct qt_use *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* The ids an inode is charged to, as e2fsprogs' get_qid() reads them. */
static void
qt_ids(ext2_filsys fs, const struct ext2_inode_large *in, uint32_t id[])
{
	size_t end = offsetof(struct ext2_inode_large, i_projid) +
	    sizeof(in->i_projid);

	id[QUOTA_USR] = inode_uid(*in);
	id[QUOTA_GRP] = inode_gid(*in);
	id[QUOTA_PRJ] = 0;
	if (EXT2_INODE_SIZE(fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
	    EXT2_GOOD_OLD_INODE_SIZE + (size_t)in->i_extra_isize >= end)
		id[QUOTA_PRJ] = in->i_projid;
}

/* Inodes that count: the root, and normal inodes but two hidden files. */
static int
qt_counts(ext2_filsys fs, ext2_ino_t ino)
{
	struct ext2_super_block *sb = fs->super;

	if (ino == EXT2_ROOT_INO)
		return 1;
	return ino >= EXT2_FIRST_INODE(sb) && ino != sb->s_prj_quota_inum &&
	    ino != sb->s_orphan_file_inum;
}

static int
qt_charge(ext2_filsys fs, ext2_ino_t ino, struct ext2_inode_large *in,
    unsigned mask, struct qt_uses *c)
{
	uint64_t space;
	uint32_t id[QUOTA_NTYPES];
	int t;

	if (in->i_links_count == 0 || !qt_counts(fs, ino))
		return 0;
	space = (uint64_t)ext2fs_get_stat_i_blocks(fs,
	    (struct ext2_inode *)in) << 9;
	qt_ids(fs, in, id);
	for (t = 0; t < QUOTA_NTYPES; t++)
		if ((mask & 1u << t) && qt_use_add(&c[t], id[t], space) < 0)
			return -ENOMEM;
	return 0;
}

/* Charge every in-use inode of fs to its ids, for the types in mask. */
static int
qt_scan(ext2_filsys fs, unsigned mask, struct qt_uses *c, const char *label,
    struct pep_err *e)
{
	int isz = EXT2_INODE_SIZE(fs->super);
	struct ext2_inode_large *in = calloc(1, (size_t)isz);
	ext2_inode_scan scan = NULL;
	ext2_ino_t ino;
	errcode_t err;
	int rc = 0;

	if (in == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	err = ext2fs_open_inode_scan(fs, 0, &scan);
	while (err == 0) {
		err = ext2fs_get_next_inode_full(scan, &ino,
		    (struct ext2_inode *)in, isz);
		if ((err == EXT2_ET_INODE_CSUM_INVALID ||
		    err == EXT2_ET_INODE_IS_GARBAGE) && in->i_links_count == 0)
			err = 0;	/* a free inode's leftovers */
		if (err != 0 || ino == 0)
			break;
		rc = qt_charge(fs, ino, in, mask, c);
		if (rc < 0)
			break;
	}
	if (err != 0)
		rc = pep_errf(e, PEP_ELIB, "%s: counting quota usage: inode "
		    "%u: %s (run e2fsck)", label, ino, error_message(err));
	else if (rc < 0)
		rc = pep_errf(e, ENOMEM, "out of memory");
	ext2fs_close_inode_scan(scan);
	free(in);
	return rc;
}

/*
 * The new file: every id the old file had (limits and grace times kept)
 * and every id charged now, usage from the count (sorted by id).
 */
static int
qt_merge(const struct quota_file *old, struct qt_uses *c,
    struct quota_file *nf)
{
	static const struct quota_entry none;
	struct quota_entry q;
	size_t i = 0, j = 0;

	if (c->n > 0)
		qsort(c->u, c->n, sizeof(c->u[0]), qt_use_cmp);
	nf->bgrace = old->bgrace;
	nf->igrace = old->igrace;
	nf->flags = old->flags;
	while (i < old->n || j < c->n) {
		if (j == c->n || (i < old->n && old->ent[i].id <= c->u[j].id))
			q = old->ent[i];
		else
			q = none;
		if (j < c->n && (i == old->n || c->u[j].id <= old->ent[i].id))
			q.id = c->u[j].id;
		if (i < old->n && old->ent[i].id == q.id)
			i++;
		q.space = q.inodes = 0;
		for (; j < c->n && c->u[j].id == q.id; j++) {
			q.space += c->u[j].space;
			q.inodes++;
		}
		if (qt_push(nf, &q) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* The quota file's inode for type t, or 0 when that type is not kept. */
static ext2_ino_t
qt_inum(ext2_filsys fs, int t)
{
	struct ext2_super_block *sb = fs->super;

	switch (t) {
	case QUOTA_USR:
		return sb->s_usr_quota_inum;
	case QUOTA_GRP:
		return sb->s_grp_quota_inum;
	default:
		return ext2fs_has_feature_project(sb) ? sb->s_prj_quota_inum :
		    0;
	}
}

static int
qt_lib(const char *label, ext2_ino_t ino, const char *what, errcode_t err,
    struct pep_err *e)
{
	return pep_errf(e, err == EXT2_ET_NO_MEMORY ? ENOMEM : PEP_ELIB,
	    "%s: quota file (inode %u): %s: %s", label, ino, what,
	    error_message(err));
}

static int
qt_read_file(ext2_filsys fs, ext2_ino_t ino, uint8_t **buf, size_t *len,
    const char *label, struct pep_err *e)
{
	ext2_file_t f = NULL;
	unsigned int got = 0;
	__u64 size = 0;
	errcode_t err;

	*buf = NULL;
	*len = 0;
	err = ext2fs_file_open(fs, ino, 0, &f);
	if (err == 0)
		err = ext2fs_file_get_lsize(f, &size);
	if (err == 0 && size > QT_FILE_MAX)
		err = EXT2_ET_FILE_TOO_BIG;
	if (err == 0 && size > 0) {
		*buf = malloc((size_t)size);
		err = *buf == NULL ? EXT2_ET_NO_MEMORY :
		    ext2fs_file_read(f, *buf, (unsigned int)size, &got);
		if (err == 0 && got != size)
			err = EXT2_ET_SHORT_READ;
	}
	if (f != NULL)
		ext2fs_file_close(f);
	if (err != 0) {
		free(*buf);
		*buf = NULL;
		return qt_lib(label, ino, "reading", err, e);
	}
	*len = (size_t)size;
	return 0;
}

static int
qt_write_file(ext2_filsys fs, ext2_ino_t ino, const uint8_t *buf,
    size_t len, uint32_t now, const char *label, struct pep_err *e)
{
	struct ext2_inode in;
	ext2_file_t f = NULL;
	unsigned int wrote = 0;
	errcode_t err, err2;

	err = ext2fs_file_open(fs, ino, EXT2_FILE_WRITE, &f);
	if (err != 0)
		return qt_lib(label, ino, "opening", err, e);
	err = ext2fs_file_set_size2(f, 0);
	if (err == 0)
		err = ext2fs_file_write(f, buf, (unsigned int)len, &wrote);
	if (err == 0 && wrote != len)
		err = EXT2_ET_SHORT_WRITE;
	err2 = ext2fs_file_close(f);
	if (err == 0)
		err = err2;
	if (err == 0)
		err = ext2fs_read_inode(fs, ino, &in);
	if (err == 0) {
		in.i_mtime = in.i_ctime = now;
		err = ext2fs_write_inode(fs, ino, &in);
	}
	if (err != 0)
		return qt_lib(label, ino, "writing", err, e);
	return 0;
}

/* Rewrite the file of type t with usage c. */
static int
qt_sync_one(ext2_filsys fs, int t, struct qt_uses *c, uint32_t now,
    const char *label, struct pep_err *e)
{
	struct quota_file old = { 0 }, nf = { 0 };
	ext2_ino_t ino = qt_inum(fs, t);
	uint8_t *buf = NULL, *out = NULL;
	size_t len = 0;
	char name[600];
	int rc;

	snprintf(name, sizeof(name), "%s: quota inode %u", label, ino);
	rc = qt_read_file(fs, ino, &buf, &len, label, e);
	if (rc == 0)
		rc = quota_parse(buf, len, t, name, &old, e);
	if (rc < 0)
		goto out;
	rc = qt_merge(&old, c, &nf);
	if (rc == 0)
		rc = quota_build(&nf, t, &out, &len);
	if (rc < 0) {
		rc = pep_errf(e, ENOMEM, "out of memory");
		goto out;
	}
	rc = qt_write_file(fs, ino, out, len, now, label, e);
out:
	free(buf);
	free(out);
	quota_file_free(&old);
	quota_file_free(&nf);
	return rc;
}

int
ext4_quota_sync(struct struct_ext2_filsys *fs, time_t now, const char *label,
    struct pep_err *e)
{
	struct qt_uses c[QUOTA_NTYPES];
	unsigned mask = 0;
	int t, rc = 0;

	if (!ext2fs_has_feature_quota(fs->super))
		return 0;
	for (t = 0; t < QUOTA_NTYPES; t++)
		if (qt_inum(fs, t) != 0)
			mask |= 1u << t;
	if (mask == 0)
		return 0;
	memset(c, 0, sizeof(c));
	rc = qt_scan(fs, mask, c, label, e);
	for (t = 0; rc == 0 && t < QUOTA_NTYPES; t++)
		if (mask & 1u << t)
			rc = qt_sync_one(fs, t, &c[t], (uint32_t)now, label, e);
	for (t = 0; t < QUOTA_NTYPES; t++)
		free(c[t].u);
	return rc;
}
