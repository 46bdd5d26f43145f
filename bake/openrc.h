/*
 * OpenRC services in the image, as rc-update leaves them (openrc.c).
 * A NULL runlevel is "default".
 */
#ifndef PEP_OPENRC_H
#define PEP_OPENRC_H

#include <time.h>

#include "../common/err.h"
#include "fsdir.h"

/* 1 if name is a usable service or runlevel name. */
int openrc_name_ok(const char *name);
/* Install /etc/init.d/NAME from the host file init (0755), conf (if not
 * NULL) as /etc/conf.d/NAME (0644), and enable it in runlevel. */
int openrc_install(struct fsdir *d, const char *name, const char *init,
    const char *conf, const char *runlevel, time_t now, struct pep_err *e);
/* rc-update add: the service's script must be there. */
int openrc_enable(struct fsdir *d, const char *name, const char *runlevel,
    time_t now, struct pep_err *e);
/* rc-update del (nothing there is not an error). */
int openrc_disable(struct fsdir *d, const char *name, const char *runlevel,
    struct pep_err *e);

#endif
