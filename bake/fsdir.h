/*
 * Writing into a filesystem tree: one small operations table, as
 * apk-tools' apk_fsdir_ops and e2fsprogs' fs_ops_callbacks have, so that
 * every writer (the edits, --write and the other content operations, a
 * host tree, an archive, and packages next) goes through the same calls,
 * and a backend (today: ext4 through libext2fs, ext4_fsdir.c) implements
 * them once.
 *
 * Nodes are named by a backend number (an inode number); paths are
 * resolved by fsdir.c, never by a backend, with the rules of a chroot at
 * the image's root: an absolute symlink target starts at the image root.
 * Unlike a chroot, a ".." that would climb above the root (in a path or a
 * symlink's target) is refused, not clamped: pep never writes anywhere a
 * path does not plainly name.
 *
 * Callback contract (fsdir_ops.iterate): the callback must not change the
 * directory being iterated; it may look up and read anything, and may
 * change other directories. Every op fills e on failure and returns a
 * negative code; -ENOENT from lookup leaves e untouched.
 */
#ifndef PEP_FSDIR_H
#define PEP_FSDIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "../common/err.h"

#define FS_NAME_MAX	255	/* bytes in one path component */
#define FS_SYMLINK_MAX	4096	/* bytes in a symlink's target */
#define FS_HOPS_MAX	40	/* symlinks followed in one path (Linux) */

/* What a node is and carries; mode holds the S_IF* type bits too. */
struct fs_meta {
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	int64_t mtime;
	uint32_t mtime_ns;
	uint32_t rdev_major;	/* character and block devices */
	uint32_t rdev_minor;
};

/* What set_meta changes. */
enum fs_set {
	FS_SET_MODE = 1,	/* permission bits (the type is kept) */
	FS_SET_OWNER = 2,
	FS_SET_MTIME = 4
};

struct fs_node {
	uint64_t id;
	uint32_t mode;		/* S_IF* and permission bits */
	uint32_t nlink;
	uint64_t size;
};

struct fsdir;

/* Called for each entry but "." and ".."; non-zero stops the walk. */
typedef int (*fs_iter_fn)(void *arg, const char *name,
    const struct fs_node *n);

struct fsdir_ops {
	const char *name;
	uint64_t (*root)(struct fsdir *d);
	/* The entry name in directory dir; -ENOENT when absent. */
	int (*lookup)(struct fsdir *d, uint64_t dir, const char *name,
	    struct fs_node *n, struct pep_err *e);
	/* A symlink's target, NUL-terminated; -ENAMETOOLONG past size. */
	int (*readlink)(struct fsdir *d, uint64_t node, char *buf,
	    size_t size, struct pep_err *e);
	/*
	 * Make name in dir (which must not hold it) with m: a directory, an
	 * empty regular file, a symlink to target, a device, FIFO or socket.
	 * ctime (and crtime) are the fsdir's now.
	 */
	int (*make)(struct fsdir *d, uint64_t dir, const char *name,
	    const struct fs_meta *m, const char *target, struct fs_node *n,
	    struct pep_err *e);
	/* A hard link to node (not a directory) as name in dir. */
	int (*link)(struct fsdir *d, uint64_t dir, const char *name,
	    uint64_t node, struct pep_err *e);
	/*
	 * Remove name from dir: a non-directory (freed with its last link)
	 * or an empty directory.
	 */
	int (*unlink)(struct fsdir *d, uint64_t dir, const char *name,
	    struct pep_err *e);
	/*
	 * Data at off (the file grows to cover it). Blocks that are all zero
	 * are left as holes, as everything never written.
	 */
	int (*write)(struct fsdir *d, uint64_t node, uint64_t off,
	    const void *buf, size_t len, struct pep_err *e);
	/* Set the size, freeing blocks past it (or leaving a hole). */
	int (*truncate)(struct fsdir *d, uint64_t node, uint64_t size,
	    struct pep_err *e);
	int (*read)(struct fsdir *d, uint64_t node, uint64_t off, void *buf,
	    size_t len, size_t *got, struct pep_err *e);
	/* Change what `what` (enum fs_set bits) names; ctime becomes now. */
	int (*set_meta)(struct fsdir *d, uint64_t node, unsigned what,
	    const struct fs_meta *m, struct pep_err *e);
	/* Set (or with val NULL, remove) an extended attribute. */
	int (*set_xattr)(struct fsdir *d, uint64_t node, const char *name,
	    const void *val, size_t len, struct pep_err *e);
	int (*iterate)(struct fsdir *d, uint64_t dir, fs_iter_fn fn,
	    void *arg, struct pep_err *e);
};

struct fsdir {
	const struct fsdir_ops *ops;
	void *priv;		/* the backend's */
	const char *label;	/* names the filesystem in messages */
	time_t now;		/* ctime of what changes */
	uint8_t *copybuf;	/* fsdir.c's, for copies; fsdir_release */
	/*
	 * The path in the image being changed, if the writer set it: a
	 * backend's failures name it (a backend knows only node numbers).
	 */
	const char *subject;
};

/* ------------------------------------------------------------ fsdir.c */

/* Where a path leads: its parent directory and last name, and the node
 * there if one exists. */
struct fs_where {
	uint64_t parent;
	char name[FS_NAME_MAX + 1];
	int exists;
	int via_link;		/* the last name was a symlink, followed */
	struct fs_node node;
};

enum fs_resolve_flags {
	FS_FOLLOW = 1,		/* follow a symlink in the last component */
	FS_MKDIRS = 2		/* make missing directories on the way */
};

/*
 * Resolve an absolute path inside the image (see the top of this file).
 * "/" itself has no parent and is refused. With FS_MKDIRS, missing
 * directories before the last component are made with dir_meta.
 */
int fsdir_resolve(struct fsdir *d, const char *path, unsigned flags,
    const struct fs_meta *dir_meta, struct fs_where *w, struct pep_err *e);
/*
 * The same for path relative to the directory base (an absolute path in
 * the image): a ".." out of base is refused, and so is ending (or making
 * a directory) outside it after an absolute symlink.
 */
int fsdir_resolve_in(struct fsdir *d, const char *base, const char *path,
    unsigned flags, const struct fs_meta *dir_meta, struct fs_where *w,
    struct pep_err *e);
/* The node a path names (symlinks followed), or -ENOENT. */
int fsdir_stat(struct fsdir *d, const char *path, struct fs_node *n,
    struct pep_err *e);
/* mkdir -p: make path and its missing parents with m (mode: perms). */
int fsdir_mkdir_p(struct fsdir *d, const char *path, const struct fs_meta *m,
    struct pep_err *e);
/*
 * Put len bytes at path: a new file gets m; an existing regular file
 * (through symlinks) keeps its metadata, gets its data replaced (its old
 * blocks freed) and mtime m->mtime. A dangling symlink is refused. With
 * FS_MKDIRS in flags, missing parents are made with dir_meta.
 */
int fsdir_put(struct fsdir *d, const char *path, const void *buf,
    size_t len, const struct fs_meta *m, unsigned flags,
    const struct fs_meta *dir_meta, struct pep_err *e);
/* Remove path; a directory with everything under it. -ENOENT if absent. */
int fsdir_remove(struct fsdir *d, const char *path, struct pep_err *e);
/* A whole regular file (through symlinks), malloc'd, NUL-terminated;
 * at most max bytes. */
int fsdir_slurp(struct fsdir *d, const char *path, size_t max, char **buf,
    size_t *len, struct pep_err *e);
/*
 * A host file's bytes to path in the image (made with missing parents,
 * root:root 0755, or replaced). A new file gets mode (0: the host file's
 * permission bits), root:root and the host file's mtime (clamped to now);
 * a replaced one keeps its metadata unless force.
 */
int fsdir_upload(struct fsdir *d, const char *host, const char *path,
    uint32_t mode, int force, time_t now, struct pep_err *e);
/* The data of host file fd (size bytes) into node, holes kept. */
int fsdir_copy_fd(struct fsdir *d, uint64_t node, int fd, uint64_t size,
    const char *name, struct pep_err *e);
/* What pep makes up itself: root:root, the given mode, mtime now. */
struct fs_meta fs_meta_made(uint32_t mode, time_t now);
/*
 * A host file's mtime later than now (the bake's epoch) becomes now, as
 * tar --clamp-mtime does for SOURCE_DATE_EPOCH: a tree checked out by git
 * a minute ago bakes to the same bytes on every machine.
 */
void fs_clamp_mtime(struct fs_meta *m, time_t now);
/* Free what fsdir.c keeps in d (its owner calls this when done). */
void fsdir_release(struct fsdir *d);
/* dir "/" name into buf (one slash between); -ENAMETOOLONG if too long. */
int fs_join(char *buf, size_t size, const char *dir, const char *name);
/* S_IF* as a word, for messages. */
const char *fs_kind(uint32_t mode);

#endif
