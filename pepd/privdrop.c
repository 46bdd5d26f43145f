/*
 * The parent gives up root once it holds what needs it (listeners on any
 * port or vsock, the audit log wherever it is, /proc/self/exe): the
 * configured "user" and that user's group, for good. The fetcher it
 * starts afterwards runs as that user too, sandboxed (sandbox.c). Started
 * as that user already (systemd's DynamicUser=), there is nothing to
 * drop.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#include "../common/log.h"
#include "pepd.h"

int
privdrop(const struct pepd_config *c, struct pep_err *e)
{
	struct passwd *pw = NULL;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (c->user != NULL) {
		errno = 0;
		pw = getpwnam(c->user);
		if (pw == NULL)
			return pep_errf(e, errno != 0 ? errno : ENOENT,
			    "user %s: %s", c->user, errno != 0 ?
			    strerror(errno) : "no such user");
	}
	if (geteuid() != 0) {
		if (pw != NULL && pw->pw_uid != geteuid())
			return pep_errf(e, EPERM, "running as uid %u, not "
			    "root: cannot switch to user %s", (unsigned int)
			    geteuid(), c->user);
		goto out;
	}
	if (pw == NULL) {
		log_warnx("running as root: set \"user\" in the "
		    "configuration to drop privileges");
		goto out;
	}
	if (setgroups(1, &pw->pw_gid) < 0 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
		return pep_errf(e, errno, "switching to user %s: %s", c->user,
		    strerror(errno));
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != pw->pw_uid || eu != pw->pw_uid || su != pw->pw_uid ||
	    rg != pw->pw_gid || eg != pw->pw_gid || sg != pw->pw_gid ||
	    setuid(0) == 0)
		return pep_errf(e, EPERM, "switching to user %s did not hold",
		    c->user);
	log_info("running as user %s (uid %u)", c->user,
	    (unsigned int)pw->pw_uid);
out:
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return pep_errf(e, errno, "no_new_privs: %s", strerror(errno));
	return 0;
}
