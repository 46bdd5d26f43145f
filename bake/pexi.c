/*
 * The pexi-boot service, installed by default so that a baked image boots
 * straight into the pep guest: pexi-bridge built static for the image's
 * architecture (/usr/local/bin/pexi-bridge), the intercept runner with its
 * node_modules (/usr/local/lib/pexi/intercept: JavaScript, the same for
 * every architecture; it needs Node.js and Firefox in the image, which
 * pexi-boot checks for when it starts), the runner's configuration
 * (/etc/pexi/config.json: the recipe's "pexi_config", else the image's,
 * else a default one), and the OpenRC script /etc/init.d/pexi-boot with
 * /etc/conf.d/pexi-boot, enabled in the default runlevel.
 *
 * The image's architecture is what /etc/apk/arch says, else the ELF
 * machine of /bin/busybox or /bin/sh (read inside the image). The guest
 * files come from a guest directory: --guest-dir or $PEP_GUEST_DIR, else
 * "guest" beside the pep-bake executable (the build tree: build/guest),
 * else ../lib/pep/guest from it (after make install); each holds
 * ARCH/pexi-bridge, intercept/, pexi-boot.initd and pexi-boot.confd.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bake.h"
#include "openrc.h"

#define PEXI_BRIDGE	"/usr/local/bin/pexi-bridge"
#define PEXI_LIB	"/usr/local/lib/pexi"
#define PEXI_RUNNER	PEXI_LIB "/intercept"
#define PEXI_CONFIG	"/etc/pexi/config.json"
#define EM_X86_64_	62
#define EM_AARCH64_	183

/* No visits: the runner connects to Firefox and intercepts what it loads
 * (the recipe, or NoCloud user-data, says what to visit). */
static const char pexi_default_config[] = "{\n  \"visits\": []\n}\n";

/* ELF identification and machine, as the ELF gABI lays them out. */
struct pexi_elf_head {
	uint8_t ident[16];
	uint16_t type;
	uint16_t machine;
} __attribute__((packed));

static const char *
pexi_machine(uint16_t m)
{
	switch (m) {
	case EM_X86_64_: return "x86_64";
	case EM_AARCH64_: return "aarch64";
	default: return NULL;
	}
}

/* The arch from an ELF file in the image, or NULL. */
static const char *
pexi_elf_arch(struct fsdir *d, const char *path)
{
	struct pexi_elf_head h;
	struct fs_node n;
	size_t got = 0;

	if (fsdir_stat(d, path, &n, NULL) < 0 || !S_ISREG(n.mode) ||
	    d->ops->read(d, n.id, 0, &h, sizeof(h), &got, NULL) < 0 ||
	    got != sizeof(h) || memcmp(h.ident, "\177ELF", 4) != 0 ||
	    h.ident[5] != 1)	/* little-endian */
		return NULL;
	return pexi_machine(le16toh(h.machine));
}

int
pexi_image_arch(struct fsdir *d, char *arch, size_t n, struct pep_err *e)
{
	static const char *const elves[] = { "/bin/busybox", "/bin/sh" };
	const char *a = NULL;
	char *buf = NULL;
	size_t len = 0, i;

	if (fsdir_slurp(d, "/etc/apk/arch", 64, &buf, &len, NULL) == 0) {
		len = strcspn(buf, "\r\n");
		buf[len] = '\0';
		snprintf(arch, n, "%s", buf);
		free(buf);
		if (len > 0)
			return 0;
	}
	for (i = 0; a == NULL && i < sizeof(elves) / sizeof(elves[0]); i++)
		a = pexi_elf_arch(d, elves[i]);
	if (a == NULL)
		return pep_errf(e, PEP_ENOTFOUND, "%s: cannot tell the image's "
		    "architecture (no /etc/apk/arch, and neither /bin/busybox "
		    "nor /bin/sh is an x86_64 or aarch64 ELF); bake with "
		    "--no-pexi", d->label);
	snprintf(arch, n, "%s", a);
	return 0;
}

/* The architectures Alpine releases for (/etc/apk/arch's values). */
static const char *const pexi_arches[] = { "x86_64", "aarch64", "armhf",
    "armv7", "loongarch64", "ppc64le", "riscv64", "s390x", "x86" };

#define PEXI_NARCHES (sizeof(pexi_arches) / sizeof(pexi_arches[0]))

int
pexi_arch_known(const char *arch)
{
	size_t i;

	for (i = 0; i < PEXI_NARCHES; i++)
		if (strcmp(pexi_arches[i], arch) == 0)
			return 1;
	return 0;
}

void
pexi_arch_names(char *buf, size_t n)
{
	size_t i, len = 0;
	int w;

	if (n > 0)
		buf[0] = '\0';
	for (i = 0; i < PEXI_NARCHES && len < n; i++) {
		w = snprintf(buf + len, n - len, "%s\"%s\"", i ? ", " : "",
		    pexi_arches[i]);
		if (w < 0)
			break;
		len += (size_t)w;
	}
}

static int
pexi_is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int
pexi_guest_dir(const char *given, char *out, size_t n, struct pep_err *e)
{
	char exe[PATH_MAX], *slash;
	const char *env = getenv("PEP_GUEST_DIR");
	ssize_t len;

	if (given == NULL && env != NULL && env[0] != '\0')
		given = env;
	if (given != NULL) {
		snprintf(out, n, "%s", given);
		return pexi_is_dir(out) ? 0 : pep_errf(e, ENOENT, "%s: no "
		    "such guest directory", given);
	}
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		exe[len] = '\0';
		slash = strrchr(exe, '/');
		if (slash != NULL)
			*slash = '\0';
		snprintf(out, n, "%s/guest", exe);
		if (pexi_is_dir(out))
			return 0;
		snprintf(out, n, "%s/../lib/pep/guest", exe);
		if (pexi_is_dir(out))
			return 0;
	}
	return pep_errf(e, PEP_ENOTFOUND, "no guest directory with "
	    "pexi-bridge (looked beside pep-bake and in ../lib/pep/guest): "
	    "build it with make guest, name it with --guest-dir, or bake "
	    "with --no-pexi");
}

static int
pexi_file(const char *dir, const char *name, char *out, size_t n,
    struct pep_err *e)
{
	struct stat st;

	snprintf(out, n, "%s/%s", dir, name);
	if (stat(out, &st) < 0)
		return pep_errf(e, PEP_ENOTFOUND, "%s: %s; build it with make "
		    "guest, or bake with --no-pexi", out, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return pep_errf(e, PEP_ENOTFOUND, "%s: not a regular file",
		    out);
	return 0;
}

static struct fs_meta
pexi_meta(uint32_t mode, time_t now)
{
	struct fs_meta m;

	memset(&m, 0, sizeof(m));
	m.mode = mode;
	m.mtime = now;
	return m;
}

int
pexi_config_write(struct fsdir *d, const char *json, size_t len, time_t now,
    struct pep_err *e)
{
	struct fs_meta fm = pexi_meta(S_IFREG | 0644, now);
	struct fs_meta dm = pexi_meta(S_IFDIR | 0755, now);
	cJSON *j = cJSON_ParseWithLength(json, len);
	int obj = cJSON_IsObject(j);

	cJSON_Delete(j);
	if (!obj)
		return pep_errf(e, PEP_EUSAGE, "%s: the runner's configuration "
		    "is not a JSON object", PEXI_CONFIG);
	return fsdir_put(d, PEXI_CONFIG, json, len, &fm, FS_MKDIRS, &dm, e);
}

/* The runner's tree, replacing an older one (a merge would keep files
 * the new one no longer has). */
static int
pexi_runner(struct fsdir *d, const char *dir, time_t now, struct pep_err *e)
{
	struct fs_meta dm = pexi_meta(S_IFDIR | 0755, now);
	struct content_result res;
	char src[PATH_MAX + 16];
	struct stat st;
	int r;

	snprintf(src, sizeof(src), "%s/intercept", dir);
	if (stat(src, &st) < 0 || !S_ISDIR(st.st_mode))
		return pep_errf(e, PEP_ENOTFOUND, "%s: no intercept runner "
		    "there; build it with make guest, or bake with --no-pexi",
		    src);
	memset(&res, 0, sizeof(res));
	r = fsdir_remove(d, PEXI_RUNNER, e);
	if (r == 0 || r == -ENOENT)
		r = fsdir_mkdir_p(d, PEXI_LIB, &dm, e);
	if (r == 0)
		r = tree_copy_in(d, src, PEXI_LIB, &res, e);
	return r;
}

static int
pexi_run(struct bake *b, const struct bake_step *s, struct pep_err *e)
{
	struct fsdir *d = ext4_fsdir(b->fs);
	char arch[32], dir[PATH_MAX], bridge[PATH_MAX + 64];
	char initd[PATH_MAX + 64], confd[PATH_MAX + 64], rel[64];
	struct fs_node n;
	int r, config;

	(void)s;
	r = pexi_guest_dir(b->o->guest_dir, dir, sizeof(dir), e);
	if (r == 0)
		r = pexi_image_arch(d, arch, sizeof(arch), e);
	snprintf(rel, sizeof(rel), "%s/pexi-bridge", arch);
	if (r == 0)
		r = pexi_file(dir, rel, bridge, sizeof(bridge), e);
	if (r == 0)
		r = pexi_file(dir, "pexi-boot.initd", initd, sizeof(initd), e);
	if (r == 0)
		r = pexi_file(dir, "pexi-boot.confd", confd, sizeof(confd), e);
	if (r == 0)
		r = fsdir_upload(d, bridge, PEXI_BRIDGE, 0755, 1, b->r->epoch,
		    e);
	if (r == 0)
		r = pexi_runner(d, dir, b->r->epoch, e);
	/* The recipe's configuration, else the image's, else a default. */
	config = r == 0 && (b->o->pexi_config != NULL ||
	    fsdir_stat(d, PEXI_CONFIG, &n, NULL) == -ENOENT);
	if (config && b->o->pexi_config != NULL)
		r = pexi_config_write(d, b->o->pexi_config,
		    b->o->pexi_config_len, b->r->epoch, e);
	else if (config)
		r = pexi_config_write(d, pexi_default_config,
		    sizeof(pexi_default_config) - 1, b->r->epoch, e);
	if (r == 0)
		r = openrc_install(d, "pexi-boot", initd, confd, NULL,
		    b->r->epoch, e);
	if (r == 0) {
		snprintf(b->r->guest_arch, sizeof(b->r->guest_arch), "%s",
		    arch);
		bake_edit(b->r, PEXI_BRIDGE, "pexi");
		bake_edit(b->r, PEXI_RUNNER, "pexi");
		if (config)
			bake_edit(b->r, PEXI_CONFIG, "pexi");
		bake_edit(b->r, "/etc/init.d/pexi-boot", "pexi");
		bake_edit(b->r, "/etc/conf.d/pexi-boot", "pexi");
		bake_edit(b->r, "/etc/runlevels/default/pexi-boot", "pexi");
	}
	return r;
}

const struct step_ops step_pexi = { "pexi", pexi_run };

/* The image is of the architecture asked for (--arch, a recipe's arch). */
static int
arch_run(struct bake *b, const struct bake_step *s, struct pep_err *e)
{
	char arch[32];

	(void)s;
	if (pexi_image_arch(ext4_fsdir(b->fs), arch, sizeof(arch), NULL) < 0)
		return pep_errf(e, PEP_ENOTFOUND, "%s: cannot tell the "
		    "image's architecture to check that it is %s (no "
		    "/etc/apk/arch, and neither /bin/busybox nor /bin/sh is "
		    "an x86_64 or aarch64 ELF)", b->label, b->o->arch);
	if (strcmp(arch, b->o->arch) != 0)
		return pep_errf(e, PEP_EUSAGE, "%s: the image is %s, not %s",
		    b->label, arch, b->o->arch);
	return 0;
}

const struct step_ops step_arch = { "arch", arch_run };
