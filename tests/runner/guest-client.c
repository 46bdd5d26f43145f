/*
 * The test guest's vsock client (static, runs as a step of /init):
 *   echo SIZE          "ECHO\n", SIZE bytes, expect them back
 *   multi N SIZE       N concurrent echo connections
 *   bulk SIZE          "BULK SIZE\n", SIZE pattern bytes, expect "OK SIZE"
 *   abort SIZE         "ECHO\n", SIZE bytes, close without reading
 *   rtt COUNT          COUNT 64-byte round trips, mean time printed
 *   refused            the connection must fail (RST)
 *   listen PORT        accept one host-initiated connection, echo it
 *   flood CAP EXTRA    CAP connections held open, then EXTRA more that
 *                      must each be refused (the host's cap); while they
 *                      are held, one host-initiated connection to port
 *                      6000 is echoed ("PEPTEST flood holding")
 * Every result is one "PEPTEST <step> ok|FAIL ..." line on stdout.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define PORT 5000

static unsigned char
pat(size_t i)
{
	return (unsigned char)(((i % 251) * 131 + 7) % 251);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
vconnect(unsigned port)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK };
	int fd;

	sa.svm_cid = VMADDR_CID_HOST;
	sa.svm_port = port;
	fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t k;

	while (n > 0) {
		k = write(fd, c, n);
		if (k <= 0)
			return -1;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Send SIZE pattern bytes while reading the echo; 0 if byte-exact. */
static int
echo_one(size_t size)
{
	unsigned char buf[65536];
	size_t sent = 0, got = 0, i, k;
	ssize_t n;
	int fd;

	fd = vconnect(PORT);
	if (fd < 0)
		return fd;
	if (write_all(fd, "ECHO\n", 5) < 0)
		return -EIO;
	while (got < size) {
		if (sent < size) {
			k = size - sent < 16384 ? size - sent : 16384;
			if (k > 16384 - (sent - got) && sent > got)
				k = 0;
			for (i = 0; i < k; i++)
				buf[i] = pat(sent + i);
			if (k > 0 && write_all(fd, buf, k) < 0)
				return -EIO;
			sent += k;
		}
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return -EPIPE;
		for (i = 0; i < (size_t)n; i++)
			if (buf[i] != pat(got + i)) {
				fprintf(stderr, "mismatch at %zu+%zu/%zd: "
				    "%02x %02x %02x %02x want %02x\n", got, i,
				    n, buf[i], buf[i + 1], buf[i + 2],
				    buf[i + 3], pat(got + i));
				return -EILSEQ;
			}
		got += (size_t)n;
	}
	close(fd);
	return 0;
}

static int
step_echo(size_t size)
{
	int r = echo_one(size);

	printf("PEPTEST echo %s %zu %s\n", r ? "FAIL" : "ok", size,
	    r ? strerror(-r) : "");
	return r;
}

static int
step_multi(int n, size_t size)
{
	int i, st, bad = 0;
	pid_t pid;

	for (i = 0; i < n; i++) {
		pid = fork();
		if (pid == 0)
			_exit(echo_one(size) == 0 ? 0 : 1);
	}
	for (i = 0; i < n; i++)
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bad++;
	printf("PEPTEST multi %s %d %zu failed=%d\n", bad ? "FAIL" : "ok", n,
	    size, bad);
	return bad ? -1 : 0;
}

static int
step_bulk(size_t size)
{
	static unsigned char buf[65536];
	char hdr[64], reply[64] = "", want[64];
	size_t sent = 0, i, k;
	double t0 = now(), dt;
	ssize_t n;
	int fd;

	fd = vconnect(PORT);
	if (fd < 0)
		goto fail;
	snprintf(hdr, sizeof(hdr), "BULK %zu\n", size);
	if (write_all(fd, hdr, strlen(hdr)) < 0)
		goto fail;
	while (sent < size) {
		k = size - sent < sizeof(buf) ? size - sent : sizeof(buf);
		for (i = 0; i < k; i++)
			buf[i] = pat(sent + i);
		if (write_all(fd, buf, k) < 0)
			goto fail;
		sent += k;
	}
	n = read(fd, reply, sizeof(reply) - 1);
	if (n <= 0)
		goto fail;
	reply[n] = '\0';
	dt = now() - t0;
	snprintf(want, sizeof(want), "OK %zu\n", size);
	if (strcmp(reply, want) != 0)
		goto fail;
	printf("PEPTEST bulk ok %zu %.2f MiB/s\n", size,
	    (double)size / 1048576.0 / (dt > 0 ? dt : 1));
	close(fd);
	return 0;
fail:
	printf("PEPTEST bulk FAIL %zu sent=%zu reply=%s\n", size, sent,
	    reply);
	return -1;
}

/*
 * Host to guest only: ask for SIZE pattern bytes and read them, sending
 * nothing more. The guest's credit reaches the host only in CREDIT_UPDATE
 * packets, so a host that ignores them stalls after the first window:
 * a 30 s receive timeout turns that into a FAIL line, not a hang.
 */
static int
step_down(size_t size)
{
	static unsigned char buf[65536];
	struct timeval tv = { .tv_sec = 30 };
	char hdr[64];
	size_t got = 0, i;
	double t0 = now(), dt;
	ssize_t n;
	int fd, bad = 0;

	fd = vconnect(PORT);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(hdr, sizeof(hdr), "DOWN %zu\n", size);
	if (write_all(fd, hdr, strlen(hdr)) < 0)
		goto fail;
	while (got < size) {
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			goto fail;
		for (i = 0; i < (size_t)n; i++)
			bad |= buf[i] != pat(got + i);
		got += (size_t)n;
	}
	if (bad || read(fd, buf, 1) != 0)
		goto fail;
	dt = now() - t0;
	printf("PEPTEST down ok %zu %.2f MiB/s\n", size,
	    (double)size / 1048576.0 / (dt > 0 ? dt : 1));
	close(fd);
	return 0;
fail:
	printf("PEPTEST down FAIL %zu got=%zu%s\n", size, got,
	    bad ? " (wrong bytes)" : "");
	return -1;
}

/* COUNT round trips of 64 bytes over one echo connection. */
static int
step_rtt(size_t count)
{
	unsigned char buf[64];
	size_t i, got;
	double t0;
	ssize_t n;
	int fd = vconnect(PORT);

	if (fd < 0 || write_all(fd, "ECHO\n", 5) < 0)
		goto fail;
	memset(buf, 'r', sizeof(buf));
	t0 = now();
	for (i = 0; i < count; i++) {
		if (write_all(fd, buf, sizeof(buf)) < 0)
			goto fail;
		for (got = 0; got < sizeof(buf); got += (size_t)n) {
			n = read(fd, buf + got, sizeof(buf) - got);
			if (n <= 0)
				goto fail;
		}
	}
	printf("PEPTEST rtt ok %zu %.1f us\n", count,
	    (now() - t0) * 1e6 / (double)(count ? count : 1));
	close(fd);
	return 0;
fail:
	printf("PEPTEST rtt FAIL\n");
	return -1;
}

static int
step_abort(size_t size)
{
	static unsigned char buf[65536];
	int fd = vconnect(PORT);
	size_t k = size < sizeof(buf) ? size : sizeof(buf);

	memset(buf, 'a', k);
	if (fd < 0 || write_all(fd, "ECHO\n", 5) < 0 ||
	    write_all(fd, buf, k) < 0) {
		printf("PEPTEST abort FAIL\n");
		return -1;
	}
	close(fd);
	printf("PEPTEST abort ok\n");
	return 0;
}

static int
step_refused(void)
{
	int fd = vconnect(PORT);

	if (fd >= 0) {
		printf("PEPTEST refused FAIL connected\n");
		return -1;
	}
	printf("PEPTEST refused ok %s\n", strerror(-fd));
	return 0;
}

static int
step_listen(unsigned port)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK };
	char buf[4096];
	ssize_t n;
	int s, c;

	sa.svm_cid = VMADDR_CID_ANY;
	sa.svm_port = port;
	s = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s, 1) < 0)
		goto fail;
	printf("PEPTEST listening %u\n", port);
	fflush(stdout);
	c = accept(s, NULL, NULL);
	if (c < 0)
		goto fail;
	for (;;) {
		n = read(c, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (write_all(c, buf, (size_t)n) < 0)
			goto fail;
	}
	close(c);
	printf("PEPTEST listen ok %u\n", port);
	return 0;
fail:
	printf("PEPTEST listen FAIL %s\n", strerror(errno));
	return -1;
}

static int
listen_port(unsigned port)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK };
	int s;

	sa.svm_cid = VMADDR_CID_ANY;
	sa.svm_port = port;
	s = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s, 1) < 0)
		return -1;
	return s;
}

/* One host-initiated connection within 60 s, echoed until EOF. */
static int
echo_host(int s)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	char buf[4096];
	ssize_t n;
	int c;

	if (poll(&p, 1, 60000) != 1)
		return -1;
	c = accept(s, NULL, NULL);
	if (c < 0)
		return -1;
	while ((n = read(c, buf, sizeof(buf))) > 0)
		if (write_all(c, buf, (size_t)n) < 0)
			break;
	close(c);
	return n == 0 ? 0 : -1;
}

static int
step_flood(unsigned cap, unsigned extra)
{
	unsigned i, opened = 0, refused = 0, other = 0, total = cap + extra;
	int *fds = calloc(total, sizeof(int)), s, fd, host;
	double t0 = now(), dt;

	s = listen_port(6000);
	if (fds == NULL || s < 0) {
		printf("PEPTEST flood FAIL setup\n");
		return -1;
	}
	for (i = 0; i < total; i++) {
		fd = vconnect(PORT);
		if (fd >= 0)
			fds[opened++] = fd;
		else if (fd == -ECONNRESET)
			refused++;
		else
			other++;
	}
	dt = now() - t0;
	printf("PEPTEST flood holding %u\n", opened);
	host = echo_host(s);
	for (i = 0; i < opened; i++)
		close(fds[i]);
	close(s);
	free(fds);
	printf("PEPTEST flood %s opened=%u refused=%u other=%u host=%s "
	    "%.1fs\n", opened == cap && refused == extra && other == 0 &&
	    host == 0 ? "ok" : "FAIL", opened, refused, other,
	    host == 0 ? "ok" : "FAIL", dt);
	return opened == cap && refused == extra && host == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	int r = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "echo") == 0)
		r = step_echo(strtoul(argv[2], NULL, 10));
	else if (argc >= 4 && strcmp(argv[1], "multi") == 0)
		r = step_multi((int)strtol(argv[2], NULL, 10),
		    strtoul(argv[3], NULL, 10));
	else if (argc >= 3 && strcmp(argv[1], "bulk") == 0)
		r = step_bulk(strtoul(argv[2], NULL, 10));
	else if (argc >= 3 && strcmp(argv[1], "down") == 0)
		r = step_down(strtoul(argv[2], NULL, 10));
	else if (argc >= 3 && strcmp(argv[1], "rtt") == 0)
		r = step_rtt(strtoul(argv[2], NULL, 10));
	else if (argc >= 3 && strcmp(argv[1], "abort") == 0)
		r = step_abort(strtoul(argv[2], NULL, 10));
	else if (argc >= 2 && strcmp(argv[1], "refused") == 0)
		r = step_refused();
	else if (argc >= 3 && strcmp(argv[1], "listen") == 0)
		r = step_listen((unsigned)strtoul(argv[2], NULL, 10));
	else if (argc >= 4 && strcmp(argv[1], "flood") == 0)
		r = step_flood((unsigned)strtoul(argv[2], NULL, 10),
		    (unsigned)strtoul(argv[3], NULL, 10));
	else
		fprintf(stderr, "guest-client: bad arguments\n");
	return r == 0 ? 0 : 1;
}
