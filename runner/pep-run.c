/*
 * pep-run: boot a pep disk in QEMU in the foreground, with no network
 * device; the guest's only way out is vsock, joined to pepd's socket (or
 * a TCP bridge port). main parses arguments and calls vm_run(); only this
 * file and vm.c print or exit.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/cli.h"
#include "../common/log.h"
#include "runner.h"

#define RUN_VERSION "0.1.0"

enum {
	OPT_SEED = 256, OPT_EFI, OPT_SHARED, OPT_VPORT, OPT_BRIDGE, OPT_PEPD,
	OPT_VSOCKSOCK, OPT_KERNEL, OPT_INITRD, OPT_APPEND, OPT_SNAPSHOT,
	OPT_CONSOLE, OPT_ARCH, OPT_QEMU, OPT_PRINT, OPT_ACCEL, OPT_VSOCK,
	OPT_STOP, OPT_MAXCONNS, OPT_SOCKMODE
};

/* One table drives getopt_long and --help (common/cli.h). */
static const struct cli_option run_options[] = {
	{ "disk", required_argument, 'd', "FILE",
	  "raw disk to boot (required; locked while running)" },
	{ "seed", required_argument, OPT_SEED, "FILE",
	  "NoCloud seed image, attached read-only as a second disk" },
	{ "efi", no_argument, OPT_EFI, NULL,
	  "boot with UEFI firmware (OVMF/AAVMF)" },
	{ "cpus", required_argument, 'c', "N",
	  "virtual CPUs (default 2)" },
	{ "memory", required_argument, 'm', "SIZE",
	  "guest memory, e.g. 1G (default 1G)" },
	{ "shared-dir", required_argument, OPT_SHARED, "DIR",
	  "share DIR with the guest, tag 'shared' (virtiofs, else 9p)" },
	{ "vsock-port", required_argument, OPT_VPORT, "PORT",
	  "guest connections to CID 2 PORT reach the endpoint (5000)" },
	{ "bridge-port", required_argument, OPT_BRIDGE, "PORT",
	  "endpoint: TCP 127.0.0.1:PORT" },
	{ "pepd-socket", required_argument, OPT_PEPD, "PATH",
	  "endpoint: pepd's unix socket" },
	{ "vsock-socket", required_argument, OPT_VSOCKSOCK,
	  "PATH", "host-initiated: \"CONNECT P\\n\" reaches guest port P" },
	{ "vsock", required_argument, OPT_VSOCK, "MODE",
	  "auto, kernel (vhost-vsock), user (built-in) or none" },
	{ "vsock-max-conns", required_argument, OPT_MAXCONNS, "N",
	  "vsock connections open at once, each way (256)" },
	{ "socket-mode", required_argument, OPT_SOCKMODE, "MODE",
	  "octal mode of the sockets pep-run creates (0600)" },
	{ "kernel", required_argument, OPT_KERNEL, "FILE",
	  "boot this kernel directly" },
	{ "initrd", required_argument, OPT_INITRD, "FILE",
	  "initramfs for --kernel" },
	{ "append", required_argument, OPT_APPEND, "CMDLINE",
	  "kernel command line for --kernel" },
	{ "snapshot", no_argument, OPT_SNAPSHOT, NULL,
	  "discard disk writes when the VM stops" },
	{ "console-log", required_argument, OPT_CONSOLE, "FILE",
	  "append the hvc0 console here (default: stdout)" },
	{ "arch", required_argument, OPT_ARCH, "ARCH",
	  "x86_64 or aarch64 (default: the host's)" },
	{ "accel", required_argument, OPT_ACCEL, "ACCEL",
	  "auto, kvm or tcg (default auto: KVM if it really runs)" },
	{ "qemu", required_argument, OPT_QEMU, "PATH",
	  "QEMU binary (default qemu-system-ARCH)" },
	{ "stop-timeout", required_argument, OPT_STOP, "SECS",
	  "after SIGINT/SIGTERM, wait this long for poweroff (30)" },
	{ "print-cmdline", no_argument, OPT_PRINT, NULL,
	  "print the QEMU command line and exit" },
	{ "verbose", no_argument, 'v', NULL, "more messages" },
	{ "quiet", no_argument, 'q', NULL,
	  "errors only (not the accelerator chosen, the power-down)" },
	{ "help", no_argument, 'h', NULL, "show this help" },
	{ "version", no_argument, 'V', NULL,
	  "show the version" },
};

#define NOPTS (sizeof(run_options) / sizeof(run_options[0]))

static void
usage(void)
{
	printf("usage: pep-run --disk FILE [options]\n\n"
	    "Boot a pep disk in QEMU (no network device); guest vsock to CID "
	    "2\nreaches pepd's socket or a TCP bridge port.\n\n");
	cli_print_options(stdout, run_options, NOPTS);
	printf("\nExit status: 0 guest powered off, 1 error, 2 usage error; "
	    "QEMU's own\nfailure status is passed through.\n");
}

static _Noreturn void
usage_error(const char *fmt, const char *arg)
{
	cli_usage_error("pep-run", fmt, arg);
}

static unsigned
parse_uint(const char *s, unsigned long lo, unsigned long hi,
    const char *what)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo ||
	    v > hi)
		usage_error(what, s);
	return (unsigned)v;
}

/* An octal mode for a socket: 0600, 660, 0; never setuid and the like. */
static unsigned
parse_mode(const char *s)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' ||
	    v > 0777)
		usage_error("invalid --socket-mode '%s' (octal, at most 0777)",
		    s);
	return (unsigned)v;
}

static int
lookup(const char *s, const char *const *names)
{
	int i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static void
parse_opt(struct run_cli *c, int ch, const char *arg)
{
	static const char *const accel[] = { "auto", "kvm", "tcg", NULL };
	static const char *const vsock[] = { "auto", "kernel", "user", "none",
	    NULL };
	struct run_opts *o = &c->o;
	int v;

	switch (ch) {
	case 'd': o->disk = arg; break;
	case OPT_SEED: o->seed = arg; break;
	case OPT_EFI: o->efi = 1; break;
	case 'c': o->cpus = parse_uint(arg, 1, 256, "invalid --cpus '%s'");
		break;
	case 'm':
		if (cli_parse_size(arg, &o->memory) < 0 || o->memory < (64 << 20))
			usage_error("invalid --memory '%s' (min 64M)", arg);
		break;
	case OPT_SHARED: o->shared_dir = arg; break;
	case OPT_VPORT: o->vsock_port = parse_uint(arg, 1, UINT32_MAX - 1,
	    "invalid --vsock-port '%s'"); break;
	case OPT_BRIDGE: o->bridge_port = parse_uint(arg, 1, 65535,
	    "invalid --bridge-port '%s'"); break;
	case OPT_PEPD: o->pepd_socket = arg; break;
	case OPT_VSOCKSOCK: o->vsock_socket = arg; break;
	case OPT_KERNEL: o->kernel = arg; break;
	case OPT_INITRD: o->initrd = arg; break;
	case OPT_APPEND: o->append = arg; break;
	case OPT_SNAPSHOT: o->snapshot = 1; break;
	case OPT_CONSOLE: o->console_log = arg; break;
	case OPT_ARCH: o->arch = arg; break;
	case OPT_QEMU: o->qemu = arg; break;
	case OPT_STOP: o->stop_timeout = parse_uint(arg, 0, 3600,
	    "invalid --stop-timeout '%s'"); break;
	case OPT_MAXCONNS: o->vsock_max_conns = parse_uint(arg, 1,
	    VSOCK_MAX_CONNS_LIMIT, "invalid --vsock-max-conns '%s'"); break;
	case OPT_SOCKMODE: o->socket_mode = parse_mode(arg); break;
	case OPT_PRINT: o->print_cmdline = 1; break;
	case OPT_ACCEL:
		v = lookup(arg, accel);
		if (v < 0)
			usage_error("invalid --accel '%s'", arg);
		o->accel = (enum run_accel)v;
		break;
	case OPT_VSOCK:
		v = lookup(arg, vsock);
		if (v < 0)
			usage_error("invalid --vsock '%s'", arg);
		o->vsock = (enum run_vsock)v;
		break;
	case 'v': c->verbose++; break;
	case 'q': c->quiet = 1; break;
	case 'h': usage(); exit(RUN_EXIT_OK);
	case 'V': printf("pep-run %s\n", RUN_VERSION); exit(RUN_EXIT_OK);
	default: usage_error("%s", "invalid option");
	}
}

static void
check_args(const struct run_opts *o)
{
	if (o->disk == NULL)
		usage_error("%s", "--disk is required");
	if (o->bridge_port != 0 && o->pepd_socket != NULL)
		usage_error("%s", "--bridge-port and --pepd-socket exclude "
		    "each other");
	if ((o->initrd != NULL || o->append != NULL) && o->kernel == NULL)
		usage_error("%s", "--initrd and --append need --kernel");
	if (strcmp(o->arch, "x86_64") != 0 && strcmp(o->arch, "aarch64") != 0)
		usage_error("unsupported --arch '%s'", o->arch);
}

static void
parse_args(struct run_cli *c, int argc, char **argv)
{
	struct option longopts[NOPTS + 1];
	char shortopts[2 * NOPTS + 1];
	int ch;

	cli_getopt_tables(run_options, NOPTS, longopts, shortopts);
	for (;;) {
		ch = getopt_long(argc, argv, shortopts, longopts, NULL);
		if (ch == -1)
			break;
		parse_opt(c, ch, optarg);
	}
	if (optind != argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	check_args(&c->o);
}

int
main(int argc, char **argv)
{
	struct run_cli c = { 0 };

	c.o.cpus = 2;
	c.o.memory = 1ULL << 30;
	c.o.vsock_port = 5000;
	c.o.vsock_max_conns = VSOCK_MAX_CONNS;
	c.o.socket_mode = 0600;
	c.o.stop_timeout = 30;
	c.o.arch = run_host_arch();
	parse_args(&c, argc, argv);
	log_init("pep-run", c.verbose, c.quiet);
	return vm_run(&c.o);
}
