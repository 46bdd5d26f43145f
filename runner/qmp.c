/*
 * QMP, just enough to ask the guest to power down: connect, read the
 * greeting, qmp_capabilities, system_powerdown. Replies are read with a
 * short timeout and not parsed beyond "return".
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "runner.h"

static int
qmp_read_line(int fd, char *buf, size_t cap)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t n = 0;
	ssize_t r;

	while (n + 1 < cap) {
		if (poll(&p, 1, 2000) <= 0)
			return -ETIMEDOUT;
		r = read(fd, buf + n, 1);
		if (r <= 0)
			return r == 0 ? -ECONNRESET : -errno;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return 0;
}

static int
qmp_cmd(int fd, const char *cmd)
{
	char line[1024];
	size_t len = strlen(cmd);
	int r;

	if (write(fd, cmd, len) != (ssize_t)len)
		return -EIO;
	for (;;) {
		r = qmp_read_line(fd, line, sizeof(line));
		if (r < 0)
			return r;
		if (strstr(line, "\"return\"") != NULL)
			return 0;
		if (strstr(line, "\"error\"") != NULL)
			return -EPROTO;
	}
}

int
qmp_powerdown(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[1024];
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0) {
		r = -errno;
		goto out;
	}
	r = qmp_read_line(fd, line, sizeof(line));
	if (r < 0)
		goto out;
	r = qmp_cmd(fd, "{\"execute\":\"qmp_capabilities\"}\n");
	if (r < 0)
		goto out;
	r = qmp_cmd(fd, "{\"execute\":\"system_powerdown\"}\n");
out:
	close(fd);
	return r;
}
