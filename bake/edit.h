/*
 * Text edits of the image's configuration files: line scanning
 * (edit_text.c), console= (edit_console.c), NoCloud (edit_nocloud.c).
 * Pure functions on buffers: the image is read and written by setup.c.
 */
#ifndef PEP_EDIT_H
#define PEP_EDIT_H

#include <stddef.h>

#include "../common/err.h"

/* ------------------------------------------------------------------ */
/* edit_text.c: line scanning for the text editors                    */

/* The line at in[pos..]: content length *n (no CR/LF), *eol its end. */
void edit_next_line(const char *in, size_t inlen, size_t pos, size_t *n,
    size_t *eol);

/* ------------------------------------------------------------------ */
/* edit_console.c: console= rewriting in bootloader configs          */

enum console_file {
	CONSOLE_GRUB_CFG,	/* /boot/grub/grub.cfg: linux lines */
	CONSOLE_DEFAULT_GRUB,	/* /etc/default/grub: GRUB_CMDLINE_LINUX* */
	CONSOLE_EXTLINUX,	/* /boot/extlinux.conf: APPEND lines */
	CONSOLE_UPDATE_EXTLINUX	/* /etc/update-extlinux.conf */
};

/*
 * Rewrite text of a file of the given kind: in each kernel command line,
 * the console= arguments are replaced by console=<c> for each of
 * consoles[] (at the first one's place); a command line without any gets
 * them appended. Nothing else changes. *out is malloc'd; *changed tells
 * whether it differs from in.
 */
/* 0 if c is a usable console= value, else PEP_EUSAGE with the reason. */
int console_check(const char *c, struct pep_err *e);
int console_rewrite(enum console_file kind, const char *in, size_t inlen,
    const char *const *consoles, size_t ncons, char **out, size_t *outlen,
    int *changed, struct pep_err *e);

/* ------------------------------------------------------------------ */
/* edit_nocloud.c: selecting the NoCloud datasource                  */

#define NOCLOUD_CFG_PATH "/etc/cloud/cloud.cfg.d/99_nocloud.cfg"
#define NOCLOUD_CFG_TEXT "datasource_list: [ NoCloud, None ]\n"

/* /etc/tiny-cloud.conf text with CLOUD=nocloud (line replaced/added). */
int nocloud_tiny_conf(const char *in, size_t inlen, char **out,
    size_t *outlen, int *changed, struct pep_err *e);

#endif
