/*
 * The VM's lifetime in the foreground: lock the disk, set up the private
 * runtime directory, start the vsock back-end (and virtiofsd), start QEMU
 * from an argv array in its own process group, then run the event loop
 * until QEMU exits. SIGINT/SIGTERM ask the guest to power down over QMP;
 * after --stop-timeout (or a second signal) QEMU is terminated, then
 * killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "runner.h"

#define RUN_KILL_GRACE	5	/* seconds between SIGTERM and SIGKILL */

struct vm {
	struct run_opts *o;
	struct run_paths p;
	struct vsock_dev *vsock;
	struct ev_handler sig;
	pid_t qemu;
	pid_t virtiofsd;
	int status;		/* QEMU's wait status, once it exited */
	int exited;
	int stopping;		/* 1: powerdown asked, 2: SIGTERM sent */
	double deadline;
	int failed;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
path_in(const char *dir, const char *name)
{
	char *s = NULL;

	if (asprintf(&s, "%s/%s", dir, name) < 0)
		return NULL;
	return s;
}

static int
copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in, out, r = 0;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	for (;;) {
		n = read(in, buf, sizeof(buf));
		if (n <= 0) {
			r = n < 0 ? -errno : 0;
			break;
		}
		if (write(out, buf, (size_t)n) != n) {
			r = -EIO;
			break;
		}
	}
	close(in);
	if (close(out) < 0 && r == 0)
		r = -errno;
	return r;
}

static int
paths_init(struct vm *vm, struct pep_err *e)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	struct run_paths *p = &vm->p;
	char *tmpl = NULL;

	if (base == NULL || access(base, W_OK) != 0)
		base = "/tmp";
	if (asprintf(&tmpl, "%s/pep-run.XXXXXX", base) < 0)
		return -ENOMEM;
	if (!vm->o->print_cmdline && mkdtemp(tmpl) == NULL) {
		free(tmpl);
		return pep_errf(e, errno, "%s: mkdtemp", base);
	}
	p->dir = tmpl;
	p->qmp = path_in(tmpl, "qmp.sock");
	p->vhost_user = path_in(tmpl, "vsock.sock");
	p->virtiofs = path_in(tmpl, "virtiofs.sock");
	p->efi_vars = path_in(tmpl, "efi-vars.fd");
	if (p->qmp == NULL || p->vhost_user == NULL || p->virtiofs == NULL ||
	    p->efi_vars == NULL)
		return -ENOMEM;
	return 0;
}

static void
paths_free(struct vm *vm)
{
	struct run_paths *p = &vm->p;

	if (p->dir != NULL && !vm->o->print_cmdline) {
		unlink(p->qmp);
		unlink(p->vhost_user);
		unlink(p->virtiofs);
		unlink(p->efi_vars);
		rmdir(p->dir);
	}
	free(p->dir);
	free(p->qmp);
	free(p->vhost_user);
	free(p->virtiofs);
	free(p->efi_vars);
}

/* Decide accel, vsock mode, firmware and binary. */
static int
resolve(struct vm *vm, struct pep_err *e)
{
	struct run_opts *o = vm->o;
	static char qemu[64];
	int endpoint = o->pepd_socket != NULL || o->bridge_port != 0 ||
	    o->vsock_socket != NULL;

	if (o->qemu == NULL) {
		snprintf(qemu, sizeof(qemu), "qemu-system-%s", o->arch);
		o->qemu = qemu;
	}
	if (o->accel == RUN_ACCEL_AUTO) {
		char why[128];

		if (strcmp(o->arch, run_host_arch()) != 0) {
			o->accel = RUN_ACCEL_TCG;
			log_info("accelerator: TCG (guest %s, host %s)",
			    o->arch, run_host_arch());
		} else if (kvm_usable(why, sizeof(why))) {
			o->accel = RUN_ACCEL_KVM;
			log_info("accelerator: KVM");
		} else {
			o->accel = RUN_ACCEL_TCG;
			log_info("accelerator: TCG, several times slower: %s",
			    why);
		}
	}
	/* the kernel's vhost-vsock has no endpoint bridge here: user mode */
	if (o->vsock == RUN_VSOCK_AUTO)
		o->vsock = !endpoint && vhost_vsock_usable() ?
		    RUN_VSOCK_KERNEL : RUN_VSOCK_USER;
	if (strcmp(o->arch, "aarch64") == 0 && o->kernel == NULL)
		o->efi = 1;	/* virt has no other firmware to boot a disk */
	if (o->efi && efi_find(o->arch, &vm->p.efi_code,
	    &vm->p.efi_vars_template) < 0)
		return pep_errf(e, PEP_ENOTFOUND, "no UEFI firmware for %s "
		    "(install ovmf or qemu-efi-aarch64)", o->arch);
	if (o->shared_dir != NULL)
		vm->p.virtiofsd = virtiofsd_find();
	return 0;
}

static pid_t
spawn(char **argv, int own_group)
{
	sigset_t none;
	pid_t pid;

	pid = fork();
	if (pid != 0)
		return pid;
	if (own_group)
		setpgid(0, 0);	/* terminal ^C reaches pep-run only */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvp(argv[0], argv);
	fprintf(stderr, "pep-run: %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int
start_virtiofsd(struct vm *vm, struct pep_err *e)
{
	struct run_argv a = { 0 };
	int i, r;

	r = virtiofsd_build_argv(vm->o, &vm->p, &a);
	if (r < 0)
		goto out;
	vm->virtiofsd = spawn(a.v, 1);
	if (vm->virtiofsd < 0) {
		r = pep_errf(e, errno, "fork");
		goto out;
	}
	for (i = 0; i < 100 && access(vm->p.virtiofs, F_OK) != 0; i++)
		usleep(50000);
	if (i == 100)
		r = pep_errf(e, PEP_ENOTFOUND, "virtiofsd did not start");
out:
	argv_free(&a);
	return r;
}

static void
on_signal(void *arg, uint32_t events)
{
	struct vm *vm = arg;
	struct signalfd_siginfo si;
	int st;

	(void)events;
	if (read(vm->sig.fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGCHLD) {
		if (waitpid(vm->qemu, &st, WNOHANG) == vm->qemu) {
			vm->status = st;
			vm->exited = 1;
		}
		if (vm->virtiofsd > 0 &&
		    waitpid(vm->virtiofsd, &st, WNOHANG) == vm->virtiofsd)
			vm->virtiofsd = 0;
		return;
	}
	if (vm->stopping == 0 && qmp_powerdown(vm->p.qmp) == 0) {
		log_info("asked the guest to power down (%us)",
		    vm->o->stop_timeout);
		vm->stopping = 1;
		vm->deadline = now() + vm->o->stop_timeout;
		return;
	}
	vm->deadline = now();	/* second signal or no QMP: stop now */
	vm->stopping = 1;
}

/* Past the deadline: SIGTERM, then SIGKILL after a grace period. */
static void
enforce_deadline(struct vm *vm)
{
	if (vm->stopping == 0 || now() < vm->deadline)
		return;
	if (vm->stopping == 1) {
		kill(vm->qemu, SIGTERM);
		vm->stopping = 2;
		vm->deadline = now() + RUN_KILL_GRACE;
	} else {
		kill(vm->qemu, SIGKILL);
		vm->deadline = now() + 3600;
	}
}

static int
setup_signals(struct vm *vm)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigdelset(&set, SIGPIPE);
	vm->sig.fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (vm->sig.fd < 0)
		return -errno;
	vm->sig.cb = on_signal;
	vm->sig.arg = vm;
	return ev_add(&vm->sig, EPOLLIN);
}

static void
loop(struct vm *vm)
{
	int ms;

	while (!vm->exited) {
		ms = vm->stopping ? 200 : 1000;
		if (ev_run_once(ms) < 0)
			break;
		if (vm->vsock != NULL && vm->vsock->failed == 1 &&
		    vm->stopping == 0) {
			log_warnx("vsock back-end failed: stopping the VM");
			vm->failed = 1;
			vm->stopping = 2;
			vm->deadline = now() + RUN_KILL_GRACE;
			kill(vm->qemu, SIGTERM);
		}
		enforce_deadline(vm);
	}
}

static int
exit_status(const struct vm *vm)
{
	if (vm->failed)
		return RUN_EXIT_ERROR;
	if (WIFEXITED(vm->status))
		return WEXITSTATUS(vm->status);
	if (WIFSIGNALED(vm->status))
		return vm->stopping ? RUN_EXIT_OK : 128 + WTERMSIG(vm->status);
	return RUN_EXIT_ERROR;
}

/*
 * Every fd the hard limit allows: each vsock connection holds one (the
 * caps are sized from what this leaves, vsock_caps).
 */
static void
nofile_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("setrlimit RLIMIT_NOFILE");
}

static int
start(struct vm *vm, struct run_argv *a, struct pep_err *e)
{
	struct run_opts *o = vm->o;
	int r;

	nofile_raise();
	r = ev_init();
	if (r == 0)
		r = setup_signals(vm);
	if (r < 0)
		return pep_errf(e, r, "event loop");
	if (o->efi) {
		r = copy_file(vm->p.efi_vars_template, vm->p.efi_vars);
		if (r < 0)
			return pep_errf(e, r, "%s: copy", vm->p.efi_vars);
	}
	if (o->vsock == RUN_VSOCK_USER) {
		vm->vsock = vsock_new(o);
		if (vm->vsock == NULL)
			return pep_errf(e, ENOMEM, "vsock");
		r = vsock_listen(vm->vsock, vm->p.vhost_user, e);
		if (r == 0 && o->vsock_socket != NULL)
			r = vsock_cmd_listen(vm->vsock, o->vsock_socket, e);
		if (r < 0)
			return r;
	}
	if (o->shared_dir != NULL && vm->p.virtiofsd != NULL) {
		r = start_virtiofsd(vm, e);
		if (r < 0)
			return r;
	}
	if (log_verbose())
		argv_print(a);
	vm->qemu = spawn(a->v, 1);
	if (vm->qemu < 0)
		return pep_errf(e, errno, "fork");
	return 0;
}

static void
teardown(struct vm *vm)
{
	if (vm->virtiofsd > 0) {
		kill(vm->virtiofsd, SIGTERM);
		waitpid(vm->virtiofsd, NULL, 0);
	}
	vsock_free(vm->vsock);	/* removes the sockets it made, if still its */
	paths_free(vm);
}

int
vm_run(struct run_opts *o)
{
	struct vm vm = { .o = o, .sig = { .fd = -1 } };
	struct run_argv a = { 0 };
	struct pep_err e = { 0 };
	int r;

	r = paths_init(&vm, &e);
	if (r == 0)
		r = resolve(&vm, &e);
	if (r == 0)
		r = qemu_build_argv(o, &vm.p, &a, &e);
	if (r == 0 && o->print_cmdline) {
		argv_print(&a);
		goto out;
	}
	if (r == 0)
		r = disk_lock(o->disk, o->snapshot, &e);
	if (r >= 0)
		r = start(&vm, &a, &e);
	if (r < 0)
		goto out;
	loop(&vm);
	r = exit_status(&vm);
out:
	if (r < 0) {
		log_warnx("%s", e.msg[0] ? e.msg : pep_strerror(r));
		r = RUN_EXIT_ERROR;
	}
	argv_free(&a);
	teardown(&vm);
	return r;
}
