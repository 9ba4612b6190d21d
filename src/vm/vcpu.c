/*
 * vcpu.c: the virtual CPUs, and the loop that runs them.
 *
 * Each vCPU is a thread sitting in KVM_RUN.  When the guest touches a port
 * or an MMIO address that no in-kernel device claims, KVM returns to us;
 * we pass the access to the bus and go straight back in.  Everything else
 * a vCPU thread does is decide whether the guest has ended.
 */
#include "vm/vm_internal.h"
#include "bus/bus.h"

#include <asm/kvm_para.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* A signal with an empty handler: its only job is to interrupt KVM_RUN. */
#define SIG_VCPU_KICK SIGUSR1
/* How long a kicked vCPU may take to come back before we stop without it. */
#define VCPU_JOIN_SECS 5

/* The MSRs we set at boot (Intel SDM vol. 4 numbering, shared by AMD). */
#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_MISC_FAST_STRING	(1u << 0)
#define MSR_MTRR_DEF_TYPE	0x2ff
#define MSR_IA32_TSC		0x010
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102
#define CPUID_HYPERVISOR_BIT	(1u << 31)
#define CPUID_TSC_DEADLINE_BIT	(1u << 24)	/* leaf 1, ecx */

static struct kvm_cpuid2 *supported_cpuid(void)
{
	struct kvm_cpuid2 *c;
	int n = 256;

	/* KVM tells us how many entries it wants by failing with E2BIG. */
	for (;;) {
		c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(vm.kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG) {
			fail("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
			return NULL;
		}
		n *= 2;
	}
}

/*
 * What the guest sees of its CPU: whatever KVM supports, plus who it is
 * (APIC id), that it runs under a hypervisor (so it looks for the KVM
 * leaves and uses kvm-clock), and how many siblings it has.
 *
 * Less one paravirtual feature: PV EOI (the guest acknowledges an
 * interrupt by clearing a bit in its memory instead of writing its APIC).
 * With it, Debian's 6.1 guest under lguest in the nested test machine
 * sometimes lost a task: a thread woken by its disk read's completion
 * was marked runnable but never queued, and waited forever (once in two
 * 30 s runs of 4 KiB reads at queue depth 1 at first, once or twice per
 * hour of them since; QEMU's guest, offered PV EOI too, never in about
 * an hour).  The cause is not understood, so every EOI is a write to the
 * APIC: one more exit per interrupt, which the nested network benchmark
 * feels most.
 * doc/pv-eoi.md keeps the record: every trial, and what hiding it costs.
 *
 * Plus the TSC-deadline timer, when KVM can emulate it (QEMU adds it the
 * same way: KVM only lists it among its supported bits since Linux 6.14).
 * With it, ARAT (which KVM does list) and kvm-clock's TSC rate, Linux
 * needs no PIT: no calibrating its APIC timer against PIT ticks (about
 * 1 s of a nested guest's boot), and the PIT is switched off once instead
 * of becoming the guest's broadcast timer (e2e test boot/hello checks
 * both).  Nested test boots took about 45% less time.  It matters beyond
 * speed, too: in the nested test machine a guest hung (once in CI, once in
 * about 20 network test runs) with its vCPU thread inside KVM, writing
 * the PIT, which waits for KVM's PIT thread (kvm-pit) to finish its work;
 * that thread sat at 50-60% CPU for minutes and never did.  Without the
 * PIT in use, the guest never takes that path.
 */
static void cpuid_personalize(struct kvm_cpuid2 *c, int id)
{
	bool deadline = ioctl(vm.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;

	for (u32 i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ecx |= CPUID_HYPERVISOR_BIT;
			if (deadline)
				e->ecx |= CPUID_TSC_DEADLINE_BIT;
			e->ebx = (e->ebx & 0x0000ffff) | ((u32)vm.ncpus << 16) | ((u32)id << 24);
			if (vm.ncpus > 1)
				e->edx |= 1u << 28;	/* HTT: ebx[23:16] is valid */
			break;
		case 0xb:
		case 0x1f:
			/* x2APIC topology: every vCPU is one core of one
			 * package; edx carries this CPU's id. */
			e->edx = id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (e->ecx & ~0xff00u) | (1u << 8);
			} else if (e->index == 1) {
				int shift = 0;

				while ((1 << shift) < vm.ncpus)
					shift++;
				e->eax = shift;
				e->ebx = vm.ncpus;
				e->ecx = (e->ecx & ~0xff00u) | (2u << 8) | 1;
			}
			break;
		case KVM_CPUID_FEATURES:
			e->eax &= ~(1u << KVM_FEATURE_PV_EOI);
			break;
		case 4:
			/* Cores per package, as the cache leaves see it. */
			e->eax = (e->eax & 0x03ffffff) | ((u32)(vm.ncpus - 1) << 26);
			break;
		}
	}
}

static int vcpu_set_cpuid(struct vcpu *v)
{
	struct kvm_cpuid2 *c = supported_cpuid();
	int ret = 0;

	if (!c)
		return -1;
	cpuid_personalize(c, v->id);
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		ret = fail("KVM_SET_CPUID2: %s", strerror(errno));
	free(c);
	return ret;
}

/* The MSRs a 64-bit kernel expects sane at entry (firmware would set them). */
static int vcpu_set_msrs(struct vcpu *v)
{
	static const struct { u32 index; u64 data; } init[] = {
		{ MSR_IA32_SYSENTER_CS, 0 },
		{ MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 },
		{ MSR_CSTAR, 0 },
		{ MSR_KERNEL_GS_BASE, 0 },
		{ MSR_SYSCALL_MASK, 0 },
		{ MSR_LSTAR, 0 },
		{ MSR_IA32_TSC, 0 },
		/* Fast string operations, as every BIOS enables them. */
		{ MSR_IA32_MISC_ENABLE, MSR_MISC_FAST_STRING },
		/* MTRRs on, default write-back: RAM is RAM. */
		{ MSR_MTRR_DEF_TYPE, (1u << 11) | 6 },
	};
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[ARRAY_SIZE(init)];
	} msrs = { .hdr.nmsrs = ARRAY_SIZE(init) };

	for (unsigned i = 0; i < ARRAY_SIZE(init); i++) {
		msrs.e[i].index = init[i].index;
		msrs.e[i].data = init[i].data;
	}
	if (ioctl(v->fd, KVM_SET_MSRS, &msrs) != (int)ARRAY_SIZE(init))
		return fail("KVM_SET_MSRS: KVM refused one of the boot MSRs");
	return 0;
}

static struct kvm_segment flat_segment(u16 sel, u8 type, bool code64)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1,
		.l = code64, .g = 1,
	};
}

/* Long mode, paging on, the boot protocol's flat segments. */
static int vcpu_set_sregs(struct vcpu *v, const struct boot_entry *be)
{
	struct kvm_sregs s;
	struct kvm_segment data = flat_segment(BOOT_DS, 3, false);

	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return fail("KVM_GET_SREGS: %s", strerror(errno));
	s.cs = flat_segment(BOOT_CS, 11, true);
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.gdt.base = be->gdt_base;
	s.gdt.limit = be->gdt_limit;
	/* A busy 64-bit TSS: VMX entry checks insist TR is valid. */
	s.tr = (struct kvm_segment){ .selector = 0x20, .limit = 0x67, .type = 11,
				     .present = 1, .s = 0 };
	s.cr3 = be->cr3;
	s.cr4 = 1u << 5;			/* PAE */
	s.cr0 = 0x80050033;			/* PG WP NE ET MP PE */
	s.efer = (1u << 8) | (1u << 10);	/* LME LMA */
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return fail("KVM_SET_SREGS: %s", strerror(errno));
	return 0;
}

static int vcpu_set_regs(struct vcpu *v, const struct boot_entry *be)
{
	struct kvm_regs r = {
		.rflags = 2,		/* bit 1 is always set; IF clear */
		.rip = be->rip,
		.rsi = be->rsi,
	};
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };

	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return fail("KVM_SET_REGS: %s", strerror(errno));
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return fail("KVM_SET_FPU: %s", strerror(errno));
	return 0;
}

/*
 * Local APIC: LINT0 delivers the PIC's ExtINT, LINT1 NMIs, as a PC's
 * firmware leaves them; without this the legacy PIC cannot reach CPU 0.
 */
static int vcpu_set_lapic(struct vcpu *v)
{
	struct kvm_lapic_state l;
	u32 *lvt0 = (u32 *)&l.regs[0x350], *lvt1 = (u32 *)&l.regs[0x360];

	if (ioctl(v->fd, KVM_GET_LAPIC, &l) < 0)
		return fail("KVM_GET_LAPIC: %s", strerror(errno));
	*lvt0 = (*lvt0 & ~0x700u & ~(1u << 16)) | (7u << 8);	/* ExtINT */
	*lvt1 = (*lvt1 & ~0x700u & ~(1u << 16)) | (4u << 8);	/* NMI */
	if (ioctl(v->fd, KVM_SET_LAPIC, &l) < 0)
		return fail("KVM_SET_LAPIC: %s", strerror(errno));
	return 0;
}

static int vcpu_create(struct vcpu *v, int id)
{
	v->id = id;
	v->fd = ioctl(vm.vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return fail("KVM_CREATE_VCPU %d: %s", id, strerror(errno));
	v->run = mmap(NULL, vm.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED)
		return fail("mmap of vCPU %d state: %s", id, strerror(errno));
	if (vcpu_set_cpuid(v) || vcpu_set_msrs(v) || vcpu_set_lapic(v))
		return -1;
	return 0;
}

/* Part of vm_create(): every vCPU, none of them pointed anywhere yet. */
int vcpus_create(void)
{
	vm.run_size = ioctl(vm.kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm.run_size <= 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	for (int i = 0; i < vm.ncpus; i++)
		if (vcpu_create(&vm.vcpus[i], i))
			return -1;
	return 0;
}

/*
 * Only the boot CPU starts at the kernel's entry point; the application
 * processors wait for the INIT and SIPI it sends them.
 */
int vm_setup_vcpus(const struct boot_entry *be)
{
	struct vcpu *boot = &vm.vcpus[0];

	return vcpu_set_sregs(boot, be) || vcpu_set_regs(boot, be) ? -1 : 0;
}

/* For KVM internal errors: the state a developer needs to see. */
static void vcpu_dump(struct vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return;
	fprintf(stderr,
		"lguest: vCPU %d: rip %016llx rsp %016llx rflags %08llx\n"
		"  rax %016llx rbx %016llx rcx %016llx rdx %016llx\n"
		"  rsi %016llx rdi %016llx rbp %016llx\n"
		"  cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx\n"
		"  cs %04x ss %04x\n",
		v->id, r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx,
		r.rsi, r.rdi, r.rbp, s.cr0, s.cr2, s.cr3, s.cr4, s.efer,
		s.cs.selector, s.ss.selector);
}

/* One 32-bit register of the local APIC page KVM_GET_LAPIC returns. */
static u32 apic_reg(const struct kvm_lapic_state *la, unsigned int off)
{
	u32 v;

	memcpy(&v, la->regs + off, sizeof(v));
	return v;
}

/* The highest vector set in a 256-bit APIC bitmap (IRR, ISR), or -1. */
static int apic_top_vector(const struct kvm_lapic_state *la, unsigned int base)
{
	for (int i = 7; i >= 0; i--) {
		u32 bits = apic_reg(la, base + i * 0x10);

		if (bits)
			return i * 32 + 31 - __builtin_clz(bits);
	}
	return -1;
}

/*
 * The other half of vm_dump(), on the vCPU's own thread (vCPU ioctls wait
 * while KVM_RUN runs): a guest that hangs is usually halted, and then the
 * question is what should have woken it: its timer, or an interrupt.
 */
static void vcpu_dump_wait(struct vcpu *v)
{
	static const char *const mp_names[] = { "runnable", "uninitialized", "init-received",
						"halted", "sipi-received", "stopped" };
	struct kvm_lapic_state la;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;

	vcpu_dump(v);
	if (ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0 || ioctl(v->fd, KVM_GET_LAPIC, &la) < 0 ||
	    ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return;
	fprintf(stderr,
		"lguest: vCPU %d: %s; APIC timer lvt %08x initial %u current %u divide %x; "
		"tpr %x, highest irr %d isr %d; event injected %u (vector %u), nmi pending %u\n",
		v->id, mp.mp_state < ARRAY_SIZE(mp_names) ? mp_names[mp.mp_state] : "?",
		apic_reg(&la, 0x320), apic_reg(&la, 0x380), apic_reg(&la, 0x390),
		apic_reg(&la, 0x3e0), apic_reg(&la, 0x80), apic_top_vector(&la, 0x200),
		apic_top_vector(&la, 0x100), ev.interrupt.injected, ev.interrupt.nr,
		ev.nmi.pending);
}

/*
 * SIGUSR2's KVM half (vm.h): each vCPU prints on its own thread.  Nothing
 * here may wait on KVM: this runs on the main loop, and a vCPU wedged in
 * the kernel holds locks (the PIT's, for one) that a VM ioctl would wait
 * on forever, taking SIGTERM's handling down with it.
 */
void vm_dump(void)
{
	for (int i = 0; i < vm.ncpus; i++) {
		atomic_store(&vm.vcpus[i].dump_wanted, true);
		pthread_kill(vm.vcpus[i].thread, SIG_VCPU_KICK);
	}
}

/* Port I/O: string instructions arrive as `count` back-to-back accesses. */
static void vcpu_pio(struct kvm_run *run)
{
	u8 *data = (u8 *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;

	for (u32 i = 0; i < run->io.count; i++, data += run->io.size) {
		if (!bus_access(BUS_PIO, run->io.port, data, run->io.size, write) &&
		    run->io.port != 0x80)	/* 0x80 is the POST/delay port */
			verbose("unclaimed port %s %#x (%u bytes)",
				write ? "write" : "read", run->io.port, run->io.size);
	}
}

static void vcpu_mmio(struct kvm_run *run)
{
	if (run->mmio.len > 8)
		return;
	if (!bus_access(BUS_MMIO, run->mmio.phys_addr, run->mmio.data,
			run->mmio.len, run->mmio.is_write))
		verbose("unclaimed MMIO %s %#llx (%u bytes)",
			run->mmio.is_write ? "write" : "read",
			(unsigned long long)run->mmio.phys_addr, run->mmio.len);
}

/* One exit; false when this vCPU should stop running. */
static bool vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_pio(run);
		return true;
	case KVM_EXIT_MMIO:
		vcpu_mmio(run);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN:
		/* A triple fault: how a PC reboots when all else fails. */
		verbose("vCPU %d: triple fault, the guest reset", v->id);
		if (verbose_on)
			vcpu_dump(v);
		vm_stop(EXIT_GUEST_DONE);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		verbose("vCPU %d: system event %u", v->id, run->system_event.type);
		vm_stop(EXIT_GUEST_DONE);
		return false;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel APIC; treat as power off. */
		vm_stop(EXIT_GUEST_DONE);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		fprintf(stderr, "lguest: vCPU %d: KVM could not enter the guest (reason %#llx)\n",
			v->id, (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vcpu_dump(v);
		vm_stop(EXIT_LAUNCHER);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		fprintf(stderr, "lguest: vCPU %d: KVM internal error (suberror %u)\n",
			v->id, run->internal.suberror);
		vcpu_dump(v);
		vm_stop(EXIT_LAUNCHER);
		return false;
	default:
		fprintf(stderr, "lguest: vCPU %d: unexpected KVM exit %u\n", v->id, run->exit_reason);
		vcpu_dump(v);
		vm_stop(EXIT_LAUNCHER);
		return false;
	}
}

/*
 * The launcher's start cost, exec to the first KVM_RUN, in CPU time of the
 * whole process: printed under --verbose for `make bench`.
 */
static void report_start_cost(void)
{
	struct timespec cpu;

	/* The scheduler's own account, summed over all our threads: finer
	 * than getrusage(), which counts in ticks on many kernels. */
	if (!verbose_on || clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) < 0)
		return;
	verbose("start cost: %.3f ms CPU to the first KVM_RUN",
		cpu.tv_sec * 1e3 + cpu.tv_nsec / 1e6);
}

/*
 * How long the guest ran by the host's clock, from the first KVM_RUN to
 * the stop: `make bench` takes it from the wall time of the whole run to
 * find the launcher's own share (starting and ending), which the guest's
 * uptime cannot tell it where the guest's clock runs slow (nested KVM).
 */
static void report_guest_time(void)
{
	u64 first = atomic_load(&vm.first_run_ns);

	if (first)
		verbose("the guest ran %.3f s (first KVM_RUN to the stop)",
			(monotonic_ns() - first) / 1e9);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	sigset_t kick;

	sigemptyset(&kick);
	sigaddset(&kick, SIG_VCPU_KICK);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	if (v->id == 0) {
		report_start_cost();
		atomic_store(&vm.first_run_ns, monotonic_ns());
	}

	for (;;) {
		if (atomic_exchange(&v->dump_wanted, false))
			vcpu_dump_wait(v);
		/* immediate_exit is set by vm_run_vcpus() when stopping: KVM_RUN
		 * then returns EINTR at once instead of entering the guest. */
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				if (v->run->immediate_exit)
					break;
				continue;
			}
			fprintf(stderr, "lguest: vCPU %d: KVM_RUN: %s\n", v->id, strerror(errno));
			vm_stop(EXIT_LAUNCHER);
			break;
		}
		if (!vcpu_handle_exit(v))
			break;
	}
	return NULL;
}

static void kick_handler(int sig)
{
}

/*
 * Wait for a kicked vCPU thread to leave, but not forever: one stuck
 * inside KVM (seen in the nested test machine: a PIT write waiting on
 * KVM's PIT thread, for good) must not keep us from removing taps,
 * restoring the terminal and exiting.  Such a thread is left to the
 * kernel; the process ends when it does.
 */
static void vcpu_join(struct vcpu *v)
{
	struct timespec deadline;
	int err;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += VCPU_JOIN_SECS;
	err = pthread_timedjoin_np(v->thread, NULL, &deadline);
	if (err == ETIMEDOUT)
		warn_user("vCPU %d did not leave KVM_RUN within %d s (stuck in the kernel); "
			  "stopping without it", v->id, VCPU_JOIN_SECS);
}

/*
 * Start every vCPU thread, serve the host side on this thread until
 * somebody stops the VM, then bring the vCPUs out of the guest.
 */
int vm_run_vcpus(void (*serve)(int stop_fd))
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigset_t kick;

	sigaction(SIG_VCPU_KICK, &sa, NULL);
	/* Blocked everywhere but in vCPU threads (which unblock it), so a
	 * kick never lands on a thread that isn't in KVM_RUN. */
	sigemptyset(&kick);
	sigaddset(&kick, SIG_VCPU_KICK);
	pthread_sigmask(SIG_BLOCK, &kick, NULL);

	for (int i = 0; i < vm.ncpus; i++) {
		char name[16];

		if (pthread_create(&vm.vcpus[i].thread, NULL, vcpu_thread, &vm.vcpus[i]))
			die_host("cannot start vCPU thread %d", i);
		snprintf(name, sizeof(name), "vcpu%d", i);
		thread_name(vm.vcpus[i].thread, name);
	}
	verbose("running the guest");
	serve(vm.stop_fd);
	report_guest_time();

	for (int i = 0; i < vm.ncpus; i++) {
		vm.vcpus[i].run->immediate_exit = 1;
		pthread_kill(vm.vcpus[i].thread, SIG_VCPU_KICK);
	}
	for (int i = 0; i < vm.ncpus; i++)
		vcpu_join(&vm.vcpus[i]);
	return vm.exit_status;
}
