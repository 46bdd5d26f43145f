/*
 * console_rewrite: every tests/data/console/NAME.KIND.in must become
 * NAME.KIND.out with consoles {"hvc0"} (and .out must stay as it is),
 * plus inline cases with two consoles and the argument checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bake/edit.h"
#include "../tapdata.h"

static const struct {
	const char *name;
	enum console_file kind;
} kinds[] = {
	{ "grub_cfg", CONSOLE_GRUB_CFG },
	{ "default_grub", CONSOLE_DEFAULT_GRUB },
	{ "extlinux", CONSOLE_EXTLINUX },
	{ "update_extlinux", CONSOLE_UPDATE_EXTLINUX },
};
/* Rewrite in; 1 if the result is want and changed is as expected. */
static int
same(enum console_file kind, const char *in, size_t inlen,
    const char *const *cons, size_t ncons, const char *want, size_t wantlen)
{
	char *out = NULL;
	size_t outlen = 0;
	int changed = -1, r, ok;

	r = console_rewrite(kind, in, inlen, cons, ncons, &out, &outlen,
	    &changed, NULL);
	ok = tap_rewrote(r, out, outlen, changed, in, inlen, want, wantlen);
	free(out);
	return ok;
}

static int
kind_of(const char *file, enum console_file *kind)
{
	const char *dot, *end = strrchr(file, '.');
	size_t i, n;

	if (end == NULL || strcmp(end, ".in") != 0)
		return 0;
	for (dot = end - 1; dot > file && *dot != '.'; dot--)
		;
	if (*dot != '.')
		return 0;
	n = (size_t)(end - dot - 1);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strlen(kinds[i].name) == n &&
		    memcmp(dot + 1, kinds[i].name, n) == 0) {
			*kind = kinds[i].kind;
			return 1;
		}
	}
	return -1;
}

/* tap_golden's same: arg is the kind; the console is hvc0. */
static int
same_hvc0(void *arg, const char *in, size_t inlen, const char *want,
    size_t wantlen)
{
	static const char *const hvc[] = { "hvc0" };

	return same(*(enum console_file *)arg, in, inlen, hvc, 1, want,
	    wantlen);
}

static void
one_case(const char *dir, const char *file)
{
	enum console_file kind = CONSOLE_GRUB_CFG;
	int k = kind_of(file, &kind);

	if (k == 0)
		return;
	if (!tap_ok(k > 0, "%s: known kind", file))
		return;
	tap_golden(dir, file, same_hvc0, &kind);
}

static void
data_cases(const char *top)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/console", top);
	tap_each(dir, ".in", one_case);
}

#define S(x) x, sizeof(x) - 1

static void
two_consoles(void)
{
	static const char *const two[] = { "ttyS0,115200n8", "hvc0" };

	tap_ok(same(CONSOLE_GRUB_CFG,
	    S("\tlinux /vmlinuz ro console=tty0 quiet console=ttyS1\n"), two, 2,
	    S("\tlinux /vmlinuz ro console=ttyS0,115200n8 console=hvc0 "
	    "quiet\n")),
	    "grub.cfg: two consoles at the first one's place");
	tap_ok(same(CONSOLE_DEFAULT_GRUB,
	    S("GRUB_CMDLINE_LINUX_DEFAULT=console=tty0\n"), two, 2,
	    S("GRUB_CMDLINE_LINUX_DEFAULT=\"console=ttyS0,115200n8 "
	    "console=hvc0\"\n")),
	    "default grub: a bare value gets quotes when it needs them");
	tap_ok(same(CONSOLE_EXTLINUX, S("APPEND root=/dev/vda\n"), two, 2,
	    S("APPEND root=/dev/vda console=ttyS0,115200n8 console=hvc0\n")),
	    "extlinux: two consoles appended");
	tap_ok(same(CONSOLE_UPDATE_EXTLINUX,
	    S("serial_port=ttyS0\ndefault_kernel_opts=\"quiet\"\n"), two, 2,
	    S("serial_port=ttyS0\ndefault_kernel_opts=\"quiet "
	    "console=ttyS0,115200n8 console=hvc0\"\n")),
	    "update-extlinux: serial_port kept when it is a wanted console");
	tap_ok(same(CONSOLE_GRUB_CFG,
	    S("linux /v console=a\0b x\nlinux /v\0 y\n"), two, 2,
	    S("linux /v console=ttyS0,115200n8 console=hvc0 x\n"
	    "linux /v\0 y console=ttyS0,115200n8 console=hvc0\n")),
	    "NUL bytes are plain bytes");
}

static int
fails(const char *const *cons, size_t ncons, enum console_file kind)
{
	struct pep_err e = { 0, "" };
	char *out = NULL;
	size_t outlen = 0;
	int changed = 0, r;

	r = console_rewrite(kind, S("linux /v\n"), cons, ncons, &out, &outlen,
	    &changed, &e);
	free(out);
	return r == -PEP_EUSAGE && out == NULL && e.msg[0] != '\0';
}

static void
bad_args(void)
{
	static const char *const blank[] = { "hvc0 quiet" };
	static const char *const tab[] = { "hvc0\t" };
	static const char *const empty[] = { "" };
	static const char *const quote[] = { "hvc0\"" };
	static const char *const squote[] = { "it's" };
	static const char *const dollar[] = { "$x" };
	static const char *const ok1[] = { "hvc0" };

	tap_ok(fails(blank, 1, CONSOLE_GRUB_CFG), "blank refused");
	tap_ok(fails(tab, 1, CONSOLE_GRUB_CFG), "tab refused");
	tap_ok(fails(empty, 1, CONSOLE_GRUB_CFG), "empty refused");
	tap_ok(fails(quote, 1, CONSOLE_GRUB_CFG), "double quote refused");
	tap_ok(fails(squote, 1, CONSOLE_GRUB_CFG), "single quote refused");
	tap_ok(fails(dollar, 1, CONSOLE_GRUB_CFG), "$ refused");
	tap_ok(fails(ok1, 0, CONSOLE_GRUB_CFG), "no console refused");
	tap_ok(fails(ok1, 1, (enum console_file)99), "unknown kind refused");
}

int
main(int argc, char **argv)
{
	data_cases(argc > 1 ? argv[1] : "tests/data");
	two_consoles();
	bad_args();
	return tap_done();
}
