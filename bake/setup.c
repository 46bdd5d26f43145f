/*
 * The steps that make a stock image a pep guest: the kernel console on
 * hvc0 (or --console) in every bootloader configuration found, and the
 * NoCloud datasource for cloud-init (99_nocloud.cfg) or tiny-cloud
 * (CLOUD=nocloud): whichever the image has, or the one --bootstrap (a
 * recipe's "bootstrap") names, or none. The text rewriting is
 * edit_console.c's and edit_nocloud.c's; this file reads and writes the
 * image.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bake.h"
#include "edit.h"

static const struct console_target {
	const char *path;
	enum console_file kind;
} console_targets[] = {
	{ "/boot/grub/grub.cfg", CONSOLE_GRUB_CFG },
	{ "/etc/default/grub", CONSOLE_DEFAULT_GRUB },
	{ "/boot/extlinux.conf", CONSOLE_EXTLINUX },
	{ "/etc/update-extlinux.conf", CONSOLE_UPDATE_EXTLINUX },
};

static int
setup_write(struct bake *b, const char *path, const char *buf, size_t len,
    const char *action, struct pep_err *e)
{
	int rc = ext4_write_file(b->fs, path, buf, len, e);

	if (rc == 0)
		bake_edit(b->r, path, action);
	return rc;
}

static int
setup_console_one(struct bake *b, const struct console_target *t,
    struct pep_err *e)
{
	char *in = NULL, *outb = NULL;
	size_t inlen = 0, outlen = 0;
	int rc, changed = 0;

	rc = ext4_read_file(b->fs, t->path, &in, &inlen, e);
	if (rc == -ENOENT) {
		rc = 0;		/* a dangling symlink: nothing to patch */
		goto out;
	}
	if (rc < 0)
		goto out;
	rc = console_rewrite(t->kind, in, inlen, b->o->consoles,
	    b->o->nconsoles, &outb, &outlen, &changed, e);
	if (rc < 0)
		goto out;
	if (changed)
		rc = setup_write(b, t->path, outb, outlen, "patched", e);
	else
		bake_edit(b->r, t->path, "unchanged");
out:
	free(in);
	free(outb);
	return rc;
}

static int
setup_consoles(struct bake *b, const struct bake_step *s, struct pep_err *e)
{
	size_t i, seen = 0;
	int rc;

	(void)s;
	for (i = 0; i < sizeof(console_targets) / sizeof(console_targets[0]);
	    i++) {
		if (ext4_exists(b->fs, console_targets[i].path) != 1)
			continue;
		seen++;
		rc = setup_console_one(b, &console_targets[i], e);
		if (rc < 0)
			return rc;
	}
	if (seen == 0)
		bake_warn(b->r, "no-bootloader", b->o->input, "%s: no "
		    "bootloader configuration found (looked for "
		    "/boot/grub/grub.cfg, /etc/default/grub, /boot/extlinux.conf, "
		    "/etc/update-extlinux.conf); console not set", b->o->input);
	return 0;
}

static int
setup_cloudinit(struct bake *b, struct pep_err *e)
{
	char *cur = NULL;
	size_t len = 0;
	int rc, had;

	rc = ext4_mkdir_p(b->fs, "/etc/cloud/cloud.cfg.d", e);
	if (rc < 0)
		return rc;
	had = ext4_read_file(b->fs, NOCLOUD_CFG_PATH, &cur, &len, NULL) == 0;
	if (had && len == strlen(NOCLOUD_CFG_TEXT) &&
	    memcmp(cur, NOCLOUD_CFG_TEXT, len) == 0) {
		bake_edit(b->r, NOCLOUD_CFG_PATH, "unchanged");
		free(cur);
		return 0;
	}
	free(cur);
	return setup_write(b, NOCLOUD_CFG_PATH, NOCLOUD_CFG_TEXT,
	    strlen(NOCLOUD_CFG_TEXT), had ? "patched" : "created", e);
}

static int
setup_tinycloud(struct bake *b, struct pep_err *e)
{
	static const char *const conf = "/etc/tiny-cloud.conf";
	char *in = NULL, *outb = NULL;
	size_t inlen = 0, outlen = 0;
	int rc, changed = 0, had;

	had = ext4_read_file(b->fs, conf, &in, &inlen, NULL) == 0;
	if (!had &&
	    ext4_read_file(b->fs, "/usr/lib/tiny-cloud/tiny-cloud.conf", &in,
	    &inlen, NULL) < 0) {
		in = NULL;
		inlen = 0;
	}
	rc = nocloud_tiny_conf(in != NULL ? in : "", inlen, &outb, &outlen,
	    &changed, e);
	if (rc < 0)
		goto out;
	if (had && !changed)
		bake_edit(b->r, conf, "unchanged");
	else
		rc = setup_write(b, conf, outb, outlen,
		    had ? "patched" : "created", e);
out:
	free(in);
	free(outb);
	return rc;
}

static const char *const bootstrap_names[] = {
	[BAKE_BOOTSTRAP_AUTO] = "auto",
	[BAKE_BOOTSTRAP_CLOUDINIT] = "cloud-init",
	[BAKE_BOOTSTRAP_TINYCLOUD] = "tiny-cloud",
	[BAKE_BOOTSTRAP_NONE] = "none",
};

#define NBOOTSTRAPS (sizeof(bootstrap_names) / sizeof(bootstrap_names[0]))

const char *
setup_bootstrap_name(enum bake_bootstrap bs)
{
	return (size_t)bs < NBOOTSTRAPS ? bootstrap_names[bs] : "?";
}

int
setup_bootstrap_of(const char *name)
{
	size_t i;

	for (i = 0; i < NBOOTSTRAPS; i++)
		if (strcmp(bootstrap_names[i], name) == 0)
			return (int)i;
	return -1;
}

/*
 * A bootstrap asked for by name is configured whether or not the image
 * has it yet (a content operation may bring it), with a warning when it
 * was not found.
 */
static void
setup_forced(struct bake *b, int found, const char *name, const char *where)
{
	if (!found)
		bake_warn(b->r, "bootstrap-not-found", b->o->input, "%s: no "
		    "%s found (%s); its NoCloud datasource configured as "
		    "asked", b->o->input, name, where);
}

static int
setup_nocloud(struct bake *b, const struct bake_step *s, struct pep_err *e)
{
	int ci = ext4_exists(b->fs, "/etc/cloud") == 1;
	int tiny = ext4_exists(b->fs, "/etc/tiny-cloud.conf") == 1 ||
	    ext4_exists(b->fs, "/usr/lib/tiny-cloud") == 1 ||
	    ext4_exists(b->fs, "/lib/tiny-cloud") == 1;
	enum bake_bootstrap bs = b->o->bootstrap;
	int rc = 0;

	(void)s;
	if (bs == BAKE_BOOTSTRAP_CLOUDINIT)
		setup_forced(b, ci, "cloud-init", "/etc/cloud");
	if (bs == BAKE_BOOTSTRAP_TINYCLOUD)
		setup_forced(b, tiny, "tiny-cloud", "/etc/tiny-cloud.conf, "
		    "/usr/lib/tiny-cloud");
	if (bs != BAKE_BOOTSTRAP_AUTO) {
		ci = bs == BAKE_BOOTSTRAP_CLOUDINIT;
		tiny = bs == BAKE_BOOTSTRAP_TINYCLOUD;
	} else if (!ci && !tiny) {
		bake_warn(b->r, "no-cloud-init", b->o->input, "%s: neither "
		    "cloud-init (/etc/cloud) nor tiny-cloud "
		    "(/etc/tiny-cloud.conf, /usr/lib/tiny-cloud) found; "
		    "NoCloud datasource not configured", b->o->input);
	}
	snprintf(b->r->bootstrap, sizeof(b->r->bootstrap), "%s",
	    ci ? "cloud-init" : tiny ? "tiny-cloud" : "none");
	if (ci)
		rc = setup_cloudinit(b, e);
	if (rc == 0 && tiny)
		rc = setup_tinycloud(b, e);
	return rc;
}

const struct step_ops step_console = { "console", setup_consoles };
const struct step_ops step_nocloud = { "nocloud", setup_nocloud };
