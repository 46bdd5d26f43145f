/*
 * QEMU's command line, built as an argv array (never a shell string):
 * q35 on x86_64, virt on aarch64; KVM when /dev/kvm really runs a guest,
 * else TCG; UEFI firmware from the usual Debian/Ubuntu/Homebrew places;
 * virtio-blk disks, virtio-console hvc0, no network device at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "runner.h"

int
argv_add(struct run_argv *a, const char *s)
{
	char **nv;
	size_t cap;

	if (a->n + 2 > a->cap) {
		cap = a->cap ? a->cap * 2 : 32;
		nv = realloc(a->v, cap * sizeof(*nv));
		if (nv == NULL)
			return -ENOMEM;
		a->v = nv;
		a->cap = cap;
	}
	a->v[a->n] = strdup(s);
	if (a->v[a->n] == NULL)
		return -ENOMEM;
	a->n++;
	a->v[a->n] = NULL;
	return 0;
}

int
argv_addf(struct run_argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	r = argv_add(a, s);
	free(s);
	return r;
}

void
argv_free(struct run_argv *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* One argument per line would be unreadable: quote only what needs it. */
void
argv_print(const struct run_argv *a)
{
	const char *s;
	size_t i;

	for (i = 0; i < a->n; i++) {
		s = a->v[i];
		if (s[0] != '\0' && strpbrk(s, " \t\n'\"\\$`*?;&|<>()") == NULL)
			printf("%s%s", i ? " " : "", s);
		else {
			printf("%s'", i ? " " : "");
			for (; *s != '\0'; s++) {
				if (*s == '\'')
					fputs("'\\''", stdout);
				else
					putchar(*s);
			}
			putchar('\'');
		}
	}
	putchar('\n');
}

const char *
run_host_arch(void)
{
	static struct utsname u;

	if (uname(&u) < 0)
		return "x86_64";
	if (strcmp(u.machine, "arm64") == 0)
		return "aarch64";
	return u.machine;
}

#if defined(__x86_64__)
/* Real mode at 0x1000: "hlt". KVM_RUN must come back with KVM_EXIT_HLT. */
static int
kvm_tiny_run(int vm)
{
	struct kvm_userspace_memory_region mr = { 0 };
	struct kvm_sregs sr;
	struct kvm_regs regs = { 0 };
	struct kvm_run *run;
	uint8_t *mem;
	int vcpu, sz;

	mem = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -1;
	mem[0x1000] = 0xf4;
	mr.memory_size = 0x2000;
	mr.userspace_addr = (uintptr_t)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
		return -1;
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	sz = ioctl(vm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || sz <= 0)
		return -1;
	run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED,
	    vcpu, 0);
	if (run == MAP_FAILED || ioctl(vcpu, KVM_GET_SREGS, &sr) < 0)
		return -1;
	sr.cs.base = 0;
	sr.cs.selector = 0;
	regs.rip = 0x1000;
	regs.rflags = 2;
	if (ioctl(vcpu, KVM_SET_SREGS, &sr) < 0 ||
	    ioctl(vcpu, KVM_SET_REGS, &regs) < 0 ||
	    ioctl(vcpu, KVM_RUN, 0) < 0)
		return -1;
	return run->exit_reason == KVM_EXIT_HLT ? 0 : -1;
}
#else
static int
kvm_tiny_run(int vm)
{
	return ioctl(vm, KVM_CREATE_VCPU, 0) < 0 ? -1 : 0;
}
#endif

/* The child's exit codes, and what each means for the user. */
enum { KVM_OK, KVM_NO_OPEN, KVM_NO_API, KVM_NO_VM, KVM_NO_RUN };

static _Noreturn void
kvm_probe_child(void)
{
	int kvm, vm;

	alarm(3);
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		_exit(KVM_NO_OPEN);
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != 12)
		_exit(KVM_NO_API);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		_exit(KVM_NO_VM);
	_exit(kvm_tiny_run(vm) == 0 ? KVM_OK : KVM_NO_RUN);
}

/* In a child, so a nested KVM that hangs or crashes cannot take us. */
int
kvm_usable(char *why, size_t len)
{
	static const char *const what[] = {
		[KVM_NO_OPEN] = "/dev/kvm cannot be opened",
		[KVM_NO_API] = "/dev/kvm is not KVM (API version not 12)",
		[KVM_NO_VM] = "/dev/kvm cannot create a VM",
		[KVM_NO_RUN] = "/dev/kvm cannot run a guest (nested "
		    "virtualisation without KVM for guests?)",
	};
	pid_t pid;
	int st, c;

	if (access("/dev/kvm", F_OK) < 0) {
		snprintf(why, len, "no /dev/kvm (no KVM module, or a VM "
		    "without nested virtualisation)");
		return 0;
	}
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		snprintf(why, len, "/dev/kvm: %s (join its group, often "
		    "kvm)", strerror(errno));
		return 0;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, len, "cannot probe /dev/kvm: fork: %s",
		    strerror(errno));
		return 0;
	}
	if (pid == 0)
		kvm_probe_child();
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			snprintf(why, len, "cannot probe /dev/kvm: %s",
			    strerror(errno));
			return 0;
		}
	if (!WIFEXITED(st)) {
		snprintf(why, len, "/dev/kvm hung or crashed a test guest "
		    "(signal %d)", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		return 0;
	}
	c = WEXITSTATUS(st);
	if (c == KVM_OK) {
		snprintf(why, len, "/dev/kvm runs a guest");
		return 1;
	}
	snprintf(why, len, "%s", c < (int)(sizeof(what) / sizeof(what[0])) &&
	    what[c] != NULL ? what[c] : "/dev/kvm probe failed");
	return 0;
}

int
vhost_vsock_usable(void)
{
	int fd = open("/dev/vhost-vsock", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static const char *const efi_x86_code[] = {
	"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd",
	"/usr/share/edk2/ovmf/OVMF_CODE.fd",
	"/usr/share/qemu/edk2-x86_64-code.fd",
	"/opt/homebrew/share/qemu/edk2-x86_64-code.fd",
	"/usr/local/share/qemu/edk2-x86_64-code.fd", NULL
};
static const char *const efi_x86_vars[] = {
	"/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS.fd",
	"/usr/share/edk2/ovmf/OVMF_VARS.fd",
	"/usr/share/qemu/edk2-i386-vars.fd",
	"/opt/homebrew/share/qemu/edk2-i386-vars.fd",
	"/usr/local/share/qemu/edk2-i386-vars.fd", NULL
};
static const char *const efi_arm_code[] = {
	"/usr/share/AAVMF/AAVMF_CODE.fd",
	"/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
	"/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw",
	"/opt/homebrew/share/qemu/edk2-aarch64-code.fd",
	"/usr/local/share/qemu/edk2-aarch64-code.fd", NULL
};
static const char *const efi_arm_vars[] = {
	"/usr/share/AAVMF/AAVMF_VARS.fd",
	"/usr/share/edk2/aarch64/vars-template-pflash.raw",
	"/opt/homebrew/share/qemu/edk2-arm-vars.fd",
	"/usr/local/share/qemu/edk2-arm-vars.fd", NULL
};

static const char *
first_file(const char *const *list)
{
	for (; *list != NULL; list++)
		if (access(*list, R_OK) == 0)
			return *list;
	return NULL;
}

/*
 * Debian pairs OVMF_CODE_4M with OVMF_VARS_4M: pick the VARS entry at the
 * same index when present so sizes match.
 */
int
efi_find(const char *arch, const char **code, const char **vars)
{
	const char *const *cl = efi_x86_code, *const *vl = efi_x86_vars;
	size_t i;

	if (strcmp(arch, "aarch64") == 0) {
		cl = efi_arm_code;
		vl = efi_arm_vars;
	}
	*code = *vars = NULL;
	for (i = 0; cl[i] != NULL; i++) {
		if (access(cl[i], R_OK) != 0)
			continue;
		*code = cl[i];
		if (vl[i] != NULL && access(vl[i], R_OK) == 0)
			*vars = vl[i];
		break;
	}
	if (*vars == NULL)
		*vars = first_file(vl);
	return *code != NULL && *vars != NULL ? 0 : -ENOENT;
}

const char *
virtiofsd_find(void)
{
	static const char *const list[] = { "/usr/libexec/virtiofsd",
	    "/usr/lib/qemu/virtiofsd", "/usr/lib/virtiofsd", NULL };

	if (geteuid() != 0)	/* virtiofsd needs namespaces: root */
		return NULL;
	return first_file(list);
}

int
virtiofsd_build_argv(const struct run_opts *o, const struct run_paths *p,
    struct run_argv *a)
{
	int r;

	r = argv_add(a, p->virtiofsd);
	if (r == 0)
		r = argv_addf(a, "--socket-path=%s", p->virtiofs);
	if (r == 0 && strstr(p->virtiofsd, "/qemu/") != NULL) {
		r = argv_add(a, "-o");
		if (r == 0)
			r = argv_addf(a, "source=%s", o->shared_dir);
	} else if (r == 0) {
		r = argv_addf(a, "--shared-dir=%s", o->shared_dir);
	}
	return r;
}

/* QEMU option values: a comma is written as ",,". */
static char *
qopt(const char *s)
{
	size_t i, n = 0, len = strlen(s);
	char *d;

	for (i = 0; i < len; i++)
		n += s[i] == ',' ? 2 : 1;
	d = malloc(n + 1);
	if (d == NULL)
		return NULL;
	for (i = n = 0; i < len; i++) {
		d[n++] = s[i];
		if (s[i] == ',')
			d[n++] = ',';
	}
	d[n] = '\0';
	return d;
}

/* argv_addf with one path escaped: fmt must contain exactly one %s. */
static int
argv_addp(struct run_argv *a, const char *fmt, const char *path)
{
	char *e = qopt(path);
	int r;

	if (e == NULL)
		return -ENOMEM;
	r = argv_addf(a, fmt, e);
	free(e);
	return r;
}

static int
uses_memfd(const struct run_opts *o, const struct run_paths *p)
{
	return o->vsock == RUN_VSOCK_USER ||
	    (o->shared_dir != NULL && p->virtiofsd != NULL);
}

static int
add_machine(const struct run_opts *o, const struct run_paths *p,
    struct run_argv *a)
{
	int x86 = strcmp(o->arch, "x86_64") == 0;
	int kvm = o->accel == RUN_ACCEL_KVM;
	int r;

	r = argv_add(a, "-machine");
	if (r == 0)
		r = argv_addf(a, "%s,accel=%s%s", x86 ? "q35" : "virt",
		    kvm ? "kvm" : "tcg",
		    uses_memfd(o, p) ? ",memory-backend=mem0" : "");
	if (r == 0)
		r = argv_add(a, "-cpu");
	if (r == 0)
		r = argv_add(a, kvm ? "host" : "max");
	if (r == 0)
		r = argv_add(a, "-smp");
	if (r == 0)
		r = argv_addf(a, "%u", o->cpus);
	if (r == 0)
		r = argv_add(a, "-m");
	if (r == 0)
		r = argv_addf(a, "%lluM",
		    (unsigned long long)(o->memory >> 20));
	if (r == 0 && uses_memfd(o, p)) {
		r = argv_add(a, "-object");
		if (r == 0)
			r = argv_addf(a, "memory-backend-memfd,id=mem0,"
			    "size=%lluM,share=on",
			    (unsigned long long)(o->memory >> 20));
	}
	return r;
}

static int
add_base(const struct run_opts *o, const struct run_paths *p,
    struct run_argv *a)
{
	static const char *const fixed[] = { "-nodefaults", "-no-user-config",
	    "-display", "none", "-nic", "none", "-name", "pep", NULL };
	const char *const *s;
	int r;

	r = argv_add(a, o->qemu);
	for (s = fixed; r == 0 && *s != NULL; s++)
		r = argv_add(a, *s);
	if (r == 0)
		r = add_machine(o, p, a);
	if (r == 0)
		r = argv_add(a, "-qmp");
	if (r == 0)
		r = argv_addp(a, "unix:%s,server=on,wait=off", p->qmp);
	return r;
}

static int
add_firmware(const struct run_opts *o, const struct run_paths *p,
    struct run_argv *a)
{
	int r = 0;

	if (o->efi) {
		r = argv_add(a, "-drive");
		if (r == 0)
			r = argv_addp(a, "if=pflash,format=raw,unit=0,"
			    "readonly=on,file=%s", p->efi_code);
		if (r == 0)
			r = argv_add(a, "-drive");
		if (r == 0)
			r = argv_addp(a, "if=pflash,format=raw,unit=1,file=%s",
			    p->efi_vars);
	}
	if (r == 0 && o->kernel != NULL) {
		r = argv_add(a, "-kernel");
		if (r == 0)
			r = argv_add(a, o->kernel);
	}
	if (r == 0 && o->initrd != NULL) {
		r = argv_add(a, "-initrd");
		if (r == 0)
			r = argv_add(a, o->initrd);
	}
	if (r == 0 && o->append != NULL) {
		r = argv_add(a, "-append");
		if (r == 0)
			r = argv_add(a, o->append);
	}
	return r;
}

static int
add_drive(struct run_argv *a, const char *id, const char *path,
    const char *extra, int boot)
{
	int r;

	r = argv_add(a, "-drive");
	if (r == 0)
		r = argv_addp(a, "file=%s", path);
	if (r == 0) {
		/* append the rest to the same argument */
		char *s = NULL;

		if (asprintf(&s, "%s,format=raw,if=none,id=%s%s",
		    a->v[a->n - 1], id, extra) < 0)
			return -ENOMEM;
		free(a->v[a->n - 1]);
		a->v[a->n - 1] = s;
	}
	if (r == 0)
		r = argv_add(a, "-device");
	if (r == 0)
		r = argv_addf(a, "virtio-blk-pci,drive=%s%s", id,
		    boot ? ",bootindex=1" : "");
	return r;
}

static int
add_disks(const struct run_opts *o, struct run_argv *a)
{
	int r;

	r = add_drive(a, "disk0", o->disk,
	    o->snapshot ? ",snapshot=on,discard=unmap" : ",discard=unmap", 1);
	if (r == 0 && o->seed != NULL)
		r = add_drive(a, "seed0", o->seed, ",readonly=on", 0);
	return r;
}

static int
add_console(const struct run_opts *o, struct run_argv *a)
{
	int r;

	r = argv_add(a, "-device");
	if (r == 0)
		r = argv_add(a, "virtio-serial-pci,id=vser0");
	if (r == 0)
		r = argv_add(a, "-chardev");
	if (r == 0)
		r = argv_addp(a, "file,id=con0,append=on,path=%s",
		    o->console_log != NULL ? o->console_log : "/dev/stdout");
	if (r == 0)
		r = argv_add(a, "-device");
	if (r == 0)
		r = argv_add(a, "virtconsole,bus=vser0.0,chardev=con0");
	return r;
}

static int
add_vsock(const struct run_opts *o, const struct run_paths *p,
    struct run_argv *a)
{
	int r = 0;

	if (o->vsock == RUN_VSOCK_KERNEL) {
		r = argv_add(a, "-device");
		if (r == 0)
			r = argv_addf(a, "vhost-vsock-pci,guest-cid=%d",
			    RUN_GUEST_CID);
	} else if (o->vsock == RUN_VSOCK_USER) {
		r = argv_add(a, "-chardev");
		if (r == 0)
			r = argv_addp(a, "socket,id=vsock0,path=%s",
			    p->vhost_user);
		if (r == 0)
			r = argv_add(a, "-device");
		if (r == 0)
			r = argv_add(a, "vhost-user-vsock-pci,chardev=vsock0");
	}
	return r;
}

static int
add_shared(const struct run_opts *o, const struct run_paths *p,
    struct run_argv *a)
{
	int r;

	if (o->shared_dir == NULL)
		return 0;
	if (p->virtiofsd != NULL) {
		r = argv_add(a, "-chardev");
		if (r == 0)
			r = argv_addp(a, "socket,id=fs0,path=%s", p->virtiofs);
		if (r == 0)
			r = argv_add(a, "-device");
		if (r == 0)
			r = argv_add(a, "vhost-user-fs-pci,chardev=fs0,"
			    "tag=shared");
		return r;
	}
	r = argv_add(a, "-fsdev");
	if (r == 0)
		r = argv_addp(a, "local,id=fs0,security_model=none,path=%s",
		    o->shared_dir);
	if (r == 0)
		r = argv_add(a, "-device");
	if (r == 0)
		r = argv_add(a, "virtio-9p-pci,fsdev=fs0,mount_tag=shared");
	return r;
}

int
qemu_build_argv(const struct run_opts *o, const struct run_paths *p,
    struct run_argv *a, struct pep_err *e)
{
	int r;

	r = add_base(o, p, a);
	if (r == 0)
		r = add_firmware(o, p, a);
	if (r == 0)
		r = add_disks(o, a);
	if (r == 0)
		r = add_console(o, a);
	if (r == 0)
		r = add_vsock(o, p, a);
	if (r == 0)
		r = add_shared(o, p, a);
	if (r == 0 && strcmp(o->arch, "x86_64") != 0 &&
	    strcmp(o->arch, "aarch64") != 0)
		r = pep_errf(e, PEP_EUSAGE, "%s: unsupported arch", o->arch);
	if (r < 0 && e != NULL && e->msg[0] == '\0')
		pep_errf(e, r, "building the QEMU command line");
	return r;
}
