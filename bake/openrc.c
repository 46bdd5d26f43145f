/*
 * OpenRC services in the image, as `rc-update` leaves them: a service is
 * its script /etc/init.d/NAME (0755), maybe /etc/conf.d/NAME (0644), and
 * it is enabled in a runlevel by the symlink /etc/runlevels/LEVEL/NAME ->
 * /etc/init.d/NAME (rc-update's own absolute target). A runlevel
 * directory that is missing is made, as alpine-make-vm-image does; a
 * service that is not there cannot be enabled, as with rc-update.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "openrc.h"

#define OPENRC_INITD	"/etc/init.d"
#define OPENRC_CONFD	"/etc/conf.d"
#define OPENRC_LEVELS	"/etc/runlevels"

/* A name rc-update would take: no '/', not "." or "..", not empty. */
int
openrc_name_ok(const char *name)
{
	return name[0] != '\0' && strchr(name, '/') == NULL &&
	    strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	    strlen(name) <= FS_NAME_MAX;
}

static int
openrc_names(struct fsdir *d, const char *name, const char *level,
    struct pep_err *e)
{
	if (openrc_name_ok(name) && openrc_name_ok(level))
		return 0;
	return pep_errf(e, PEP_EUSAGE, "%s: bad service or runlevel name "
	    "'%s@%s'", d->label, name, level);
}

int
openrc_enable(struct fsdir *d, const char *name, const char *runlevel,
    time_t now, struct pep_err *e)
{
	const char *level = runlevel != NULL ? runlevel : "default";
	struct fs_meta lm = fs_meta_made(S_IFLNK | 0777, now);
	struct fs_meta dm = fs_meta_made(S_IFDIR | 0755, now);
	char script[512], link[512];
	struct fs_where w;
	struct fs_node n;
	int r;

	r = openrc_names(d, name, level, e);
	if (r < 0)
		return r;
	snprintf(script, sizeof(script), OPENRC_INITD "/%s", name);
	snprintf(link, sizeof(link), OPENRC_LEVELS "/%s/%s", level, name);
	r = fsdir_stat(d, script, &n, e);
	if (r == -ENOENT)
		return pep_errf(e, ENOENT, "%s: service %s does not exist (no "
		    "%s): install it with --service", d->label, name, script);
	if (r < 0)
		return r;
	r = fsdir_resolve(d, link, FS_MKDIRS, &dm, &w, e);
	if (r < 0)
		return r;
	if (w.exists && S_ISLNK(w.node.mode))
		r = d->ops->unlink(d, w.parent, w.name, e);
	else if (w.exists)
		return pep_errf(e, EEXIST, "%s: %s: exists and is %s", d->label,
		    link, fs_kind(w.node.mode));
	if (r == 0)
		r = d->ops->make(d, w.parent, w.name, &lm, script, &n, e);
	return r;
}

int
openrc_disable(struct fsdir *d, const char *name, const char *runlevel,
    struct pep_err *e)
{
	const char *level = runlevel != NULL ? runlevel : "default";
	char link[512];
	int r;

	r = openrc_names(d, name, level, e);
	if (r < 0)
		return r;
	snprintf(link, sizeof(link), OPENRC_LEVELS "/%s/%s", level, name);
	r = fsdir_remove(d, link, e);
	return r == -ENOENT ? 0 : r;
}

int
openrc_install(struct fsdir *d, const char *name, const char *init,
    const char *conf, const char *runlevel, time_t now, struct pep_err *e)
{
	char path[512];
	int r;

	r = openrc_names(d, name, runlevel != NULL ? runlevel : "default", e);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), OPENRC_INITD "/%s", name);
	r = fsdir_upload(d, init, path, 0755, 1, now, e);
	snprintf(path, sizeof(path), OPENRC_CONFD "/%s", name);
	if (r == 0 && conf != NULL)
		r = fsdir_upload(d, conf, path, 0644, 1, now, e);
	if (r == 0)
		r = openrc_enable(d, name, runlevel, now, e);
	return r;
}
