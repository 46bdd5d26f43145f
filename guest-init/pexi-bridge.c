/*
 * pexi-bridge: listen on TCP 127.0.0.1:4040 inside the guest and join each
 * accepted connection to a new AF_VSOCK connection to the host (CID 2,
 * port 5000). main parses arguments, sets up the listener and signals and
 * hands over to the relay (bridge_relay.c); only this file exits.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../common/log.h"
#include "pexi-bridge.h"

enum pb_exit {
	PB_EXIT_OK = 0,
	PB_EXIT_ERROR = 1,
	PB_EXIT_USAGE = 2
};

enum {
	OPT_LISTEN = 'l',
	OPT_UPSTREAM = 'u',
	OPT_BUFSIZE = 256,
	OPT_MAXCONNS
};

#define PB_DEF_LISTEN	"tcp:127.0.0.1:4040"
#define PB_DEF_UPSTREAM	"vsock:2:5000"
#define PB_DEF_BUFSIZE	(64 * 1024)
#define PB_DEF_MAXCONNS	1024

struct pb_cli {
	struct pb_addr listen, upstream;
	struct pb_relay_opts ro;
	int verbose, quiet;
};

/* One table drives getopt_long and --help (common/cli.h). */
static const struct cli_option pb_options[] = {
	{ "listen", required_argument, OPT_LISTEN, "ADDR",
	  "where to accept (default " PB_DEF_LISTEN ")" },
	{ "upstream", required_argument, OPT_UPSTREAM, "ADDR",
	  "where to connect (default " PB_DEF_UPSTREAM ")" },
	{ "buffer-size", required_argument, OPT_BUFSIZE, "BYTES",
	  "per direction and connection (default 65536)" },
	{ "max-connections", required_argument, OPT_MAXCONNS,
	  "N", "pause accepting at N open pairs (default 1024)" },
	{ "quiet", no_argument, 'q', NULL,
	  "only warnings and errors" },
	{ "verbose", no_argument, 'v', NULL,
	  "log each connection (-vv: debug)" },
	{ "help", no_argument, 'h', NULL, "show this help" },
	{ "version", no_argument, 'V', NULL,
	  "show the version" },
};

#define NOPTS (sizeof(pb_options) / sizeof(pb_options[0]))

static void
usage(void)
{
	printf("usage: pexi-bridge [options]\n\n"
	    "Accept stream connections and join each one to a new upstream\n"
	    "connection, copying bytes both ways.\n\n");
	cli_print_options(stdout, pb_options, NOPTS);
	printf("\nADDR is tcp:IPV4:PORT, tcp:[IPV6]:PORT, unix:PATH or "
	    "vsock:CID:PORT.\nExit status: 0 success (also on SIGTERM/SIGINT),"
	    " 1 error, 2 usage error.\n");
}

static _Noreturn void
usage_error(const char *fmt, const char *arg)
{
	cli_usage_error("pexi-bridge", fmt, arg);
}

static void
parse_opt(struct pb_cli *c, int ch, const char *arg)
{
	long long n;

	switch (ch) {
	case OPT_LISTEN:
		if (addr_parse(arg, &c->listen) < 0)
			usage_error("invalid --listen '%s'", arg);
		break;
	case OPT_UPSTREAM:
		if (addr_parse(arg, &c->upstream) < 0)
			usage_error("invalid --upstream '%s'", arg);
		break;
	case OPT_BUFSIZE:
		if (cli_parse_num(arg, 1024, 16 << 20, &n) < 0)
			usage_error("invalid --buffer-size '%s' (1024..16M)",
			    arg);
		c->ro.bufsize = (size_t)n;
		break;
	case OPT_MAXCONNS:
		if (cli_parse_num(arg, 1, 1 << 20, &n) < 0)
			usage_error("invalid --max-connections '%s'", arg);
		c->ro.maxconns = (unsigned)n;
		break;
	case 'q': c->quiet = 1; break;
	case 'v': c->verbose++; break;
	case 'h': usage(); exit(PB_EXIT_OK);
	case 'V': printf("pexi-bridge %s\n", PB_VERSION); exit(PB_EXIT_OK);
	default: usage_error("%s", "invalid option");
	}
}

static void
parse_args(struct pb_cli *c, int argc, char **argv)
{
	struct option longopts[NOPTS + 1];
	char shortopts[2 * NOPTS + 1];
	int ch;

	cli_getopt_tables(pb_options, NOPTS, longopts, shortopts);
	if (addr_parse(PB_DEF_LISTEN, &c->listen) < 0 ||
	    addr_parse(PB_DEF_UPSTREAM, &c->upstream) < 0)
		fatalx("%s: bad built-in default", __func__);
	c->ro.bufsize = PB_DEF_BUFSIZE;
	c->ro.maxconns = PB_DEF_MAXCONNS;
	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
		parse_opt(c, ch, optarg);
	if (optind != argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	c->ro.upstream = &c->upstream;
}

/*
 * Two descriptors per pair: raise the soft limit to the hard one, and
 * keep --max-connections within what the limit allows.
 */
static void
fit_fd_limit(struct pb_cli *c)
{
	struct rlimit rl;
	rlim_t room;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	room = rl.rlim_cur > 32 ? (rl.rlim_cur - 16) / 2 : 8;
	if (room < c->ro.maxconns) {
		log_info("at most %lu connections (open file limit %lu)",
		    (unsigned long)room, (unsigned long)rl.rlim_cur);
		c->ro.maxconns = (unsigned)room;
	}
}

/* SIGTERM and SIGINT arrive on a signalfd; SIGPIPE is ignored. */
static int
signals_fd(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int
main(int argc, char **argv)
{
	struct pb_cli c;
	struct pb_relay *r = NULL;
	int lfd, sfd, rc;

	memset(&c, 0, sizeof(c));
	parse_args(&c, argc, argv);
	log_init("pexi-bridge", c.verbose, c.quiet);
	fit_fd_limit(&c);
	sfd = signals_fd();
	if (sfd < 0)
		fatal("signalfd");
	lfd = addr_listen(&c.listen);
	if (lfd < 0) {
		errno = -lfd;
		fatal("listen %s", c.listen.text);
	}
	rc = relay_new(&r, lfd, sfd, &c.ro);
	if (rc < 0) {
		errno = -rc;
		fatal("relay");
	}
	log_info("listening on %s, upstream %s", c.listen.text,
	    c.upstream.text);
	rc = relay_run(r);
	relay_free(r);
	addr_unlink(&c.listen);
	if (rc < 0) {
		errno = -rc;
		fatal("epoll_wait");
	}
	log_info("stopped by %s", strsignal(rc));
	return PB_EXIT_OK;
}
