/*
 * The fetcher's confinement: Linux's stand-in for pledge() and unveil().
 *
 * 1. no_new_privs (nothing it execs could gain privilege; landlock and
 *    seccomp need it).
 * 2. landlock, at the ABI the running kernel has (landlock(7)): the only
 *    filesystem access left is reading the CA certificates and the
 *    resolver's files (below); no writes, no exec, no other reads. ABI 4
 *    adds: no TCP bind. ABI 6 adds: no signals to, and no abstract unix
 *    sockets of, processes outside the sandbox (the parent). Without
 *    landlock (an old kernel, or disabled) pepd goes on with a warning.
 * 3. a seccomp filter, written by hand as OpenSSH's is: the system calls
 *    libcurl, OpenSSL, glibc's resolver and threads and the sanitizers
 *    need are allowed; clone only for threads (CLONE_THREAD), clone3
 *    gets ENOSYS (glibc falls back to clone), socket only for AF_INET,
 *    AF_INET6 and AF_NETLINK (glibc's getaddrinfo asks the kernel for
 *    the host's addresses), kill and tgkill only for itself; exec,
 *    ptrace and the like kill the process; everything else fails with
 *    EPERM. Installing it must work: no filter, no fetcher.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <endian.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>

#include "../common/log.h"
#include "pepd.h"

#if defined(__x86_64__)
#define SB_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SB_ARCH AUDIT_ARCH_AARCH64
#else
#error "pepd's seccomp filter knows x86_64 and aarch64 only"
#endif

/* ---- landlock ---------------------------------------------------------- */

/* The uapi header of the build host may be older than the kernel. */
#define LL_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_ABI1 ((1ULL << 13) - 1)	/* EXECUTE .. MAKE_SYM */
#define LL_FS_REFER (1ULL << 13)	/* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)	/* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15)	/* ABI 5 */
#define LL_NET_BIND_TCP (1ULL << 0)	/* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)	/* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)	/* ABI 6 */

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;	/* ABI 4 */
	uint64_t scoped;		/* ABI 6 */
};

struct ll_path_beneath {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

/* Read-only, and nothing else. Missing ones are skipped. */
static const char *const ll_read_dirs[] = {
	"/etc/ssl",			/* certs/, openssl.cnf */
	"/usr/share/ca-certificates",	/* what certs/ links to */
	"/usr/local/share/ca-certificates",
	"/usr/lib/ssl",			/* OpenSSL's OPENSSLDIR */
	"/etc/pki",			/* other distributions' CAs */
	"/etc/ca-certificates",
};

static const char *const ll_read_files[] = {
	"/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf",
	"/etc/host.conf", "/etc/gai.conf", "/etc/services",
};

static int
ll_abi(void)
{
	long v;

	v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_VERSION);
	return v < 0 ? -errno : (int)v;
}

static int
ll_allow(int rs, const char *path, uint64_t access)
{
	struct ll_path_beneath pb;
	int fd, r = 0;

	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return 0;	/* not on this system */
	pb.allowed_access = access;
	pb.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0) <
	    0)
		r = -errno;
	close(fd);
	return r;
}

static int
landlock_enter(int *abi_out, struct pep_err *e)
{
	struct ll_ruleset_attr attr = { 0 };
	size_t i, asize = sizeof(attr.handled_access_fs);
	int abi, rs, r = 0;

	*abi_out = abi = ll_abi();
	if (abi < 1) {
		log_warnx("landlock is not available (%s): the fetcher's "
		    "file system access is not restricted",
		    strerror(abi == 0 ? ENOSYS : -abi));
		return 0;
	}
	attr.handled_access_fs = LL_FS_ABI1;
	if (abi >= 2)
		attr.handled_access_fs |= LL_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LL_FS_TRUNCATE;
	if (abi >= 5)
		attr.handled_access_fs |= LL_FS_IOCTL_DEV;
	if (abi >= 4) {
		attr.handled_access_net = LL_NET_BIND_TCP;
		asize = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
		asize = sizeof(attr);
	}
	rs = (int)syscall(SYS_landlock_create_ruleset, &attr, asize, 0);
	if (rs < 0)
		return pep_errf(e, errno, "landlock_create_ruleset: %s",
		    strerror(errno));
	for (i = 0; r == 0 && i < sizeof(ll_read_dirs) / sizeof(*ll_read_dirs);
	    i++)
		r = ll_allow(rs, ll_read_dirs[i], LL_FS_READ_FILE |
		    LL_FS_READ_DIR);
	for (i = 0; r == 0 && i < sizeof(ll_read_files) /
	    sizeof(*ll_read_files); i++)
		r = ll_allow(rs, ll_read_files[i], LL_FS_READ_FILE);
	if (r == 0 && syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		r = -errno;
	close(rs);
	if (r < 0)
		return pep_errf(e, r, "landlock: %s", strerror(-r));
	return 0;
}

/* ---- seccomp ----------------------------------------------------------- */

#define SB_MAX 512
#define SB_ALLOW SECCOMP_RET_ALLOW
#define SB_KILL SECCOMP_RET_KILL_PROCESS
#define SB_ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
#if __BYTE_ORDER == __LITTLE_ENDIAN
#define SB_ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#else
#define SB_ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#endif

struct sb_prog {
	struct sock_filter f[SB_MAX];
	size_t n;
	int overflow;
};

static void
emit(struct sb_prog *p, struct sock_filter ins)
{
	if (p->n == SB_MAX) {
		p->overflow = 1;
		return;
	}
	p->f[p->n++] = ins;
}

/* if (nr == NR) return action; */
static void
sb_ret(struct sb_prog *p, uint32_t nr, uint32_t action)
{
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr,
	    0, 1));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action));
}

/* if (nr == NR) return (arg & mask) == val ? ALLOW : fail; */
static void
sb_mask(struct sb_prog *p, uint32_t nr, int arg, uint32_t mask,
    uint32_t val, uint32_t fail)
{
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr,
	    0, 5));
	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    SB_ARG_LO(arg)));
	emit(p, (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, mask));
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, val,
	    0, 1));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SB_ALLOW));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, fail));
}

/* if (nr == NR) return arg in vals[] ? ALLOW : fail; */
static void
sb_in(struct sb_prog *p, uint32_t nr, int arg, const uint32_t *vals,
    size_t n, uint32_t fail)
{
	size_t i;

	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr,
	    0, (uint8_t)(n + 3)));
	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    SB_ARG_LO(arg)));
	for (i = 0; i < n; i++)
		emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		    vals[i], (uint8_t)(n - i), 0));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, fail));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SB_ALLOW));
}

/*
 * What libcurl, OpenSSL, glibc (resolver, threads, malloc) and ASan use.
 * The filter is a linear list: the calls of every transfer come first.
 */
static const uint32_t sb_allowed[] = {
#ifdef SYS_epoll_wait
	SYS_epoll_wait,
#endif
	SYS_recvfrom, SYS_sendto, SYS_read, SYS_write, SYS_epoll_ctl,
	SYS_epoll_pwait, SYS_recvmsg, SYS_sendmsg, SYS_timerfd_settime,
	SYS_futex, SYS_getsockopt, SYS_setsockopt, SYS_connect,
	SYS_getsockname, SYS_getpeername,
#ifdef SYS_poll
	SYS_poll,
#endif
	SYS_ppoll, SYS_clock_gettime, SYS_fcntl, SYS_madvise, SYS_mmap,
	SYS_munmap, SYS_brk,
	/* the rest */
	SYS_readv, SYS_writev, SYS_pread64, SYS_close,
	SYS_lseek, SYS_fstat, SYS_newfstatat, SYS_statx, SYS_openat,
	SYS_faccessat, SYS_readlinkat, SYS_getdents64, SYS_mremap,
	SYS_mprotect,
	SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn,
	SYS_sigaltstack, SYS_getpid, SYS_gettid, SYS_getppid, SYS_getuid,
	SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getrandom,
	SYS_clock_getres, SYS_clock_nanosleep,
	SYS_gettimeofday, SYS_nanosleep, SYS_sched_yield,
	SYS_sched_getaffinity, SYS_set_robust_list,
	SYS_get_robust_list, SYS_set_tid_address, SYS_exit, SYS_exit_group,
	SYS_epoll_create1, SYS_pselect6, SYS_timerfd_create,
	SYS_timerfd_gettime, SYS_eventfd2, SYS_pipe2, SYS_socketpair,
	SYS_bind, SYS_sendmmsg, SYS_recvmmsg, SYS_shutdown,
	SYS_uname, SYS_prctl, SYS_sysinfo, SYS_prlimit64, SYS_getrlimit,
	SYS_restart_syscall, SYS_getcwd, SYS_membarrier,
#ifdef SYS_rseq
	SYS_rseq,
#endif
#ifdef SYS_faccessat2
	SYS_faccessat2,
#endif
#ifdef SYS_epoll_pwait2
	SYS_epoll_pwait2,
#endif
#ifdef SYS_open		/* x86_64's older names of the same calls */
	SYS_open, SYS_stat, SYS_lstat, SYS_access, SYS_readlink,
	SYS_select, SYS_time, SYS_epoll_create, SYS_pipe,
#endif
};

/* A compromised fetcher has no business with these: it dies. */
static const uint32_t sb_killed[] = {
	SYS_execve, SYS_execveat, SYS_ptrace, SYS_process_vm_readv,
	SYS_process_vm_writev, SYS_kexec_load, SYS_init_module,
	SYS_finit_module, SYS_delete_module, SYS_bpf, SYS_perf_event_open,
	SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_unshare,
	SYS_setns, SYS_keyctl, SYS_add_key, SYS_request_key,
	SYS_userfaultfd, SYS_personality, SYS_open_by_handle_at,
	SYS_name_to_handle_at,
#ifdef SYS_kexec_file_load
	SYS_kexec_file_load,
#endif
#ifdef SYS_io_uring_setup
	SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
#endif
#ifdef SYS_pidfd_getfd
	SYS_pidfd_getfd,
#endif
};

static void
sb_build(struct sb_prog *p)
{
	static const uint32_t families[] = { AF_INET, AF_INET6, AF_NETLINK };
	uint32_t self = (uint32_t)getpid();
	size_t i;

	p->n = 0;
	p->overflow = 0;
	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, arch)));
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
	    SB_ARCH, 1, 0));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SB_KILL));
	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, nr)));
#if defined(__x86_64__)
	/* the x32 ABI's numbers have bit 30 set: none of them */
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K,
	    0x40000000u, 0, 1));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SB_KILL));
#endif
	for (i = 0; i < sizeof(sb_allowed) / sizeof(*sb_allowed); i++)
		sb_ret(p, sb_allowed[i], SB_ALLOW);
	for (i = 0; i < sizeof(sb_killed) / sizeof(*sb_killed); i++)
		sb_ret(p, sb_killed[i], SB_KILL);
	sb_ret(p, SYS_clone3, SB_ERRNO(ENOSYS));
	sb_mask(p, SYS_clone, 0, CLONE_THREAD, CLONE_THREAD, SB_ERRNO(EPERM));
	sb_in(p, SYS_socket, 0, families, 3, SB_ERRNO(EPERM));
	sb_in(p, SYS_tgkill, 0, &self, 1, SB_ERRNO(EPERM));
	sb_in(p, SYS_kill, 0, &self, 1, SB_ERRNO(EPERM));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    SB_ERRNO(EPERM)));
}

static int
seccomp_enter(struct pep_err *e)
{
	struct sb_prog *p = calloc(1, sizeof(*p));
	struct sock_fprog fp;
	int r = 0;

	if (p == NULL)
		return pep_errf(e, ENOMEM, "out of memory");
	sb_build(p);
	if (p->overflow) {
		r = pep_errf(e, EOVERFLOW, "seccomp: the filter is too long");
		goto out;
	}
	fp.len = (unsigned short)p->n;
	fp.filter = p->f;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0) < 0)
		r = pep_errf(e, errno, "seccomp: %s", strerror(errno));
out:
	free(p);
	return r;
}

int
sandbox_enter(struct sandbox_state *st, struct pep_err *e)
{
	int r;

	st->landlock_abi = 0;
	st->seccomp = 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return pep_errf(e, errno, "no_new_privs: %s", strerror(errno));
	r = landlock_enter(&st->landlock_abi, e);
	if (r < 0)
		return r;
	r = seccomp_enter(e);
	if (r < 0)
		return r;
	st->seccomp = 1;
	return 0;
}

/* ---- --check-sandbox ---------------------------------------------------- */

static int
probe_open(const char *path, int flags)
{
	int fd;

	fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	close(fd);
	if (flags & O_CREAT)
		unlink(path);
	return 0;
}

void
sandbox_probe(struct ipc_probe_result *r)
{
	int fd;

	r->err[0] = probe_open("/etc/shadow", O_RDONLY);
	r->err[1] = probe_open("/tmp/pepd-sandbox-probe",
	    O_WRONLY | O_CREAT | O_EXCL);
	r->err[2] = probe_open("/", O_RDONLY | O_DIRECTORY);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	r->err[3] = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
}

int
sandbox_probe_exec(void)
{
	char *const argv[] = { "true", NULL };
	char *const envp[] = { NULL };

	execve("/bin/true", argv, envp);
	return -errno;
}
