/*
 * libFuzzer target for config_load: the input is written to a memfd and
 * loaded through /proc/self/fd/N, as pepd would load a file. A config
 * either loads (and has a policy) or fails with one line "PATH: what".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../pepd/pepd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pepd_config *c = NULL;
	struct pep_err e = { 0, "" };
	char path[64];
	size_t plen;
	int fd;

	fd = memfd_create("fuzz-config", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (size > 0 && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	plen = strlen(path);
	if (config_load(path, &c, &e) == 0) {
		if (c == NULL || c->policy == NULL ||
		    c->nlisten > CONFIG_MAXLISTEN)
			abort();
		config_free(c);
	} else if (c != NULL || strncmp(e.msg, path, plen) != 0 ||
	    strncmp(e.msg + plen, ": ", 2) != 0 ||
	    strchr(e.msg, '\n') != NULL) {
		abort();
	}
	close(fd);
	return 0;
}
