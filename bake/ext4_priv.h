/*
 * Inside the ext4 module (ext4*.c only): the handle, and what its files
 * share. Everyone else sees struct ext4 as opaque (ext4.h).
 */
#ifndef PEP_EXT4_PRIV_H
#define PEP_EXT4_PRIV_H

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "ext4.h"

struct ext4 {
	ext2_filsys fs;
	char *label;		/* names the filesystem in messages */
	char *io_name;		/* the file, for failures to read or write it */
	int rw;
	int nosync;		/* the caller fsyncs the file itself */
	int changed;		/* something was written: quota usage is stale */
	time_t now;		/* every timestamp written */
	int fd;			/* a dup of the caller's descriptor */
	uint64_t off;		/* the filesystem's byte offset in it */
	struct fsdir dir;	/* ops: ext4_fsdir_ops, priv: this */
};

extern const struct fsdir_ops ext4_fsdir_ops;

/* A libext2fs failure about path as one message (the file is named when
 * the I/O layer failed). */
int ext4_lib_err(struct ext4 *x, struct pep_err *e, errcode_t err,
    const char *path, const char *what);

#endif
