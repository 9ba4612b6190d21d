/*
 * vm.c: creating the KVM virtual machine.
 *
 * /dev/lguest once did all of this in one ioctl; KVM, its successor, asks
 * us to assemble a PC piece by piece: a VM, its interrupt controllers and
 * timer, its memory, and the routing of interrupts from our devices.
 * Everything here checks what KVM offers first, so that a host missing a
 * piece gets one line naming it rather than a strange failure later.
 */
#include "vm/vm_internal.h"
#include "vm/irq.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct vm_state vm;

static int kvm_check_cap(int cap, const char *what)
{
	if (ioctl(vm.kvm_fd, KVM_CHECK_EXTENSION, cap) <= 0)
		return fail("this host's KVM lacks %s; lguest needs it (update the host kernel)", what);
	return 0;
}

/* The capabilities we use, each named for the error line. */
static int kvm_check_caps(void)
{
	static const struct { int cap; const char *name; } caps[] = {
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP (in-kernel interrupt controllers)" },
		{ KVM_CAP_PIT2, "KVM_CAP_PIT2 (in-kernel timer)" },
		{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
		{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
		{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
		{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
		{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(caps); i++)
		if (kvm_check_cap(caps[i].cap, caps[i].name))
			return -1;
	return 0;
}

/* Open /dev/kvm with a message that says what to do about each failure. */
static int kvm_open(void)
{
	int version;

	vm.kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm.kvm_fd < 0) {
		if (errno == ENOENT)
			return fail("/dev/kvm does not exist: enable virtualization in the firmware and load kvm-intel or kvm-amd");
		if (errno == EACCES || errno == EPERM)
			return fail("no permission to open /dev/kvm: add yourself to the 'kvm' group or run as root");
		return fail("cannot open /dev/kvm: %s", strerror(errno));
	}
	version = ioctl(vm.kvm_fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION)
		return fail("/dev/kvm speaks API version %d, lguest needs %d", version, KVM_API_VERSION);
	return kvm_check_caps();
}

/*
 * Hand guest RAM to KVM: one slot below the PCI hole, one above 4 GiB if
 * the guest has that much.  Both come from the same host mapping.
 */
static int vm_add_memory(struct guest_mem *gm)
{
	struct kvm_userspace_memory_region low = {
		.slot = 0, .guest_phys_addr = 0,
		.memory_size = gm->low_size, .userspace_addr = (u64)(uintptr_t)gm->host,
	};
	struct kvm_userspace_memory_region high = {
		.slot = 1, .guest_phys_addr = HIGH_RAM_START,
		.memory_size = gm->high_size,
		.userspace_addr = (u64)(uintptr_t)(gm->host + gm->low_size),
	};

	if (ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, &low) < 0)
		return fail("KVM refused guest memory: %s", strerror(errno));
	if (gm->high_size && ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, &high) < 0)
		return fail("KVM refused guest memory above 4 GiB: %s", strerror(errno));
	return 0;
}

/*
 * PIT ticks the guest missed (its vCPU was not running) are dropped, not
 * re-delivered one by one as it acknowledges them.  Linux keeps time with
 * the TSC or kvm-clock and uses the PIT only to calibrate, and the KVM API
 * documentation recommends this for all but very old guests; reinjection
 * also keeps AMD's AVIC off.  On a loaded or nested host a vCPU can miss
 * thousands of ticks, and catching up is a burst of work for KVM's PIT
 * thread (the nested test machine once reported that thread in a soft
 * lockup for minutes).  A kernel without the control keeps its default.
 */
static void pit_no_reinject(void)
{
	struct kvm_reinject_control ctl = { .pit_reinject = 0 };

	if (ioctl(vm.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_REINJECT_CONTROL) <= 0)
		return;
	if (ioctl(vm.vm_fd, KVM_REINJECT_CONTROL, &ctl) < 0)
		verbose("KVM_REINJECT_CONTROL: %s; missed PIT ticks will be reinjected",
			strerror(errno));
}

/*
 * The PC's interrupt controllers (PIC + IOAPIC + local APICs) and its
 * timer live in the kernel: they are on every guest's hot path and KVM
 * does them faster than any exit to us could.
 */
static int vm_add_irqchip(void)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	/* Two pages KVM needs below 4 GiB on Intel hosts (real-mode TSS and
	 * identity table); just under the BIOS area, away from our BARs. */
	if (ioctl(vm.vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0)
		return fail("KVM_SET_TSS_ADDR: %s", strerror(errno));
	if (ioctl(vm.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
		u64 ident = 0xfffbc000UL;

		if (ioctl(vm.vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
			return fail("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	}
	if (ioctl(vm.vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return fail("KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if (ioctl(vm.vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return fail("KVM_CREATE_PIT2: %s", strerror(errno));
	pit_no_reinject();
	return irq_routing_init();
}

int vm_create(struct guest_mem *gm, int ncpus)
{
	vm.gm = gm;
	vm.ncpus = ncpus;
	vm.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm.stop_fd < 0)
		return fail("eventfd: %s", strerror(errno));
	if (kvm_open())
		return -1;
	if (ncpus > ioctl(vm.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS) &&
	    ncpus > ioctl(vm.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS))
		return fail("this host's KVM cannot run %d vCPUs", ncpus);
	vm.vm_fd = ioctl(vm.kvm_fd, KVM_CREATE_VM, 0);
	if (vm.vm_fd < 0)
		return fail("KVM_CREATE_VM: %s", strerror(errno));
	if (vm_add_memory(gm) || vm_add_irqchip() || vcpus_create())
		return -1;
	verbose("VM created: %llu MiB RAM (%llu MiB low, %llu MiB above 4 GiB), %d vCPU(s)",
		(unsigned long long)(gm->size >> 20),
		(unsigned long long)(gm->low_size >> 20),
		(unsigned long long)(gm->high_size >> 20), ncpus);
	return 0;
}

/*
 * Creating the VM needs guest RAM's address, not its contents, and it is
 * kernel work we would otherwise wait for after loading: KVM_CREATE_VM,
 * the interrupt controllers, KVM_REINJECT_CONTROL's wait for an SRCU
 * grace period (~12 ms natively), the vCPUs.  On a thread it overlaps the
 * kernel's load: in the nested test machine the first KVM_RUN of a warm
 * boot came 0.28-0.29 s into the run against 0.42-0.44 s (medians of 6,
 * 1 and 4 vCPUs).  Its error line is per thread (util.c), so it comes back
 * through create.error.
 */
static struct {
	pthread_t thread;
	bool started;
	struct guest_mem *gm;
	int ncpus, result;
	char error[512];
} create;

static void *create_thread(void *arg)
{
	(void)arg;
	create.result = vm_create(create.gm, create.ncpus);
	if (create.result)
		snprintf(create.error, sizeof(create.error), "%s", last_error());
	return NULL;
}

void vm_create_begin(struct guest_mem *gm, int ncpus)
{
	create.gm = gm;
	create.ncpus = ncpus;
	/* No thread to be had: vm_create_end() does the work itself. */
	create.started = pthread_create(&create.thread, NULL, create_thread, NULL) == 0;
}

int vm_create_end(void)
{
	if (!create.started)
		return vm_create(create.gm, create.ncpus);
	pthread_join(create.thread, NULL);
	create.started = false;
	if (create.result)
		return fail("%s", create.error);
	return 0;
}

void vm_stop(int status)
{
	u64 one = 1;

	/* First caller decides the status: a panic must not be overwritten
	 * by the reboot that follows it. */
	pthread_mutex_lock(&vm.stop_lock);
	if (!vm.stopping) {
		vm.stopping = true;
		vm.exit_status = status;
		if (write(vm.stop_fd, &one, sizeof(one)) < 0)
			abort();	/* an eventfd write cannot fail */
	}
	pthread_mutex_unlock(&vm.stop_lock);
}

int vm_stop_fd(void)
{
	return vm.stop_fd;
}

/* PVM: a KVM module that virtualizes in software; a stock kernel crawls. */
bool host_kvm_is_software(void)
{
	char line[4096];
	bool hw = false;
	FILE *f;

	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		return true;
	f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return false;
	while (!hw && fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5))
			hw = strstr(line, " vmx") || strstr(line, " svm");
	fclose(f);
	return !hw;
}
