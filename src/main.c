/*
 * main.c: the start of the tour.
 *
 * lguest is a launcher: it makes a PC out of KVM parts, puts a Linux
 * kernel in its memory, and then mostly gets out of the way.  This file
 * reads the command line (the seed's, verbatim), and then does the whole
 * job in order: map guest memory, create the devices, load the kernel
 * (while a thread creates the VM and its vCPUs), run, and clean up.  Each
 * step lives in a folder of its own:
 *
 *   vm/      the only code that talks to KVM: the VM, vCPUs, interrupts
 *   x86/     the boot protocol: kernel formats, boot_params, page tables
 *   bus/     port and MMIO dispatch, and PCI
 *   dev/     the legacy PC devices: serial port, keyboard controller, clock
 *   virtio/  the virtqueue, the PCI transport, and the virtio devices
 *   host/    the host side: terminal, event loop, disk files, taps
 */
#include "lguest.h"
#include "guest_mem.h"
#include "dev/legacy.h"
#include "dev/serial.h"
#include "host/loop.h"
#include "host/disk.h"
#include "host/term.h"
#include "bus/pci.h"
#include "virtio/virtio.h"
#include "virtio/virtio_pci.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "x86/acpi.h"
#include "vm/vm.h"
#include "x86/boot.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define MAX_INITRDS 16
#define MAX_DISKS 26
#define MAX_NICS 8
#define MAX_CPUS 64
/* Disks, cards, the console and the entropy source. */
#define MAX_VIRTIO_DEVS (MAX_DISKS + MAX_NICS + 2)

static const char usage_line[] =
	"Usage: lguest [--verbose] [--tunnet=(<ipaddr>|bridge:<bridgename>)] "
	"[--block=<file>] [--initrd=<file>]... <mem-in-mb> vmlinux [args...]";

static const char help_text[] =
	"Boot a Linux kernel in a KVM virtual machine.\n"
	"\n"
	"  <mem-in-mb>             guest RAM in MiB (e.g. 256)\n"
	"  vmlinux                 the kernel: a bzImage (e.g. /boot/vmlinuz-*) or an ELF vmlinux\n"
	"  args...                 the guest kernel command line, after lguest's fast-boot\n"
	"                          defaults (yours win; loglevel=7 undoes their 'quiet');\n"
	"                          console=ttyS0 unless you name one\n"
	"\n"
	"Options:\n"
	"  --initrd=<file>         initial ramdisk; repeat to concatenate several\n"
	"  --block=<file>[,ro]     a virtio disk backed by <file> (vda, vdb, ... in order);\n"
	"                          ,ro makes it read-only; repeat for more disks\n"
	"  --tunnet=<ip>[/prefix]|bridge:<name>[,mac=<mac>][,vhost=off]\n"
	"                          a virtio network card on a new tap device: the host\n"
	"                          side gets <ip> (default prefix /24), or the tap joins\n"
	"                          the bridge; repeat for more cards\n"
	"  --cpus=<n>              number of vCPUs (1-64, default 1)\n"
	"  --verbose, -v           trace setup, devices and unusual exits on stderr\n"
	"  --help, -h              this text\n"
	"  --version               the version\n"
	"\n"
	"Ctrl-A x quits (when stdin is a terminal); Ctrl-A Ctrl-A sends Ctrl-A.\n"
	"Exit status: 0 the guest powered off or rebooted, 1 launcher failure,\n"
	"2 bad usage or input, 3 the guest panicked.\n"
	"Environment: LGUEST_NO_HOST_DECOMPRESS=1 boots a bzImage through its own\n"
	"decompressor; XDG_CACHE_HOME (or ~/.cache) holds decompressed kernels.\n";

struct options {
	u64 mem_mib;
	const char *kernel;
	const char *initrds[MAX_INITRDS];
	int n_initrds;
	const char *disks[MAX_DISKS];
	int n_disks;
	const char *nics[MAX_NICS];
	int n_nics;
	int ncpus;
	char *cmdline;
};

static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("lguest: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n%s\n", usage_line);
	exit(EXIT_USAGE);
}

/* A strict decimal: "256" yes, "256k", "-1", "" and "0x10" no. */
static bool parse_u64(const char *s, u64 *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/*
 * Guest RAM in MiB: at least 1, and no more than this host has.  Asking for
 * more RAM than exists is almost always a typo (an extra zero), and the
 * guest would be killed by the OOM killer long after we started it.
 */
static u64 parse_mem(const char *arg)
{
	struct sysinfo si;
	u64 mib, host_mib;

	if (!parse_u64(arg, &mib))
		die_input("'%s' is not a memory size: give guest RAM in MiB, e.g. 256", arg);
	if (mib == 0)
		die_input("memory size 0: give guest RAM in MiB, e.g. 256");
	if (sysinfo(&si) == 0) {
		host_mib = ((u64)si.totalram * si.mem_unit) >> 20;
		if (mib > host_mib)
			die_input("%llu MiB is more memory than this host has (%llu MiB); give less",
				    (unsigned long long)mib, (unsigned long long)host_mib);
	}
	return mib;
}

/*
 * The guest's command line: our defaults, then the user's words joined by
 * spaces.  The kernel takes the last value of a repeated parameter, so the
 * user's arguments override ours.  console=ttyS0 is added only when the
 * user names no console: a second console= would change which one is
 * /dev/console.
 */
static char *build_cmdline(char **args, int n)
{
	static const char console[] = "console=ttyS0 ";
	/* quiet: every byte on the emulated UART is an exit to us, and a
	 * stock kernel prints ~50 KiB while booting; loglevel=7 brings the
	 * messages back. */
	static const char defaults[] =
		"quiet reboot=k panic=-1 tsc=reliable no_timer_check "
		"i8042.noaux i8042.nomux i8042.nopnp 8250.nr_uarts=1 "
		"cryptomgr.notests";
	bool has_console = false;
	size_t len = sizeof(console) + sizeof(defaults) + 1;
	char *s;

	for (int i = 0; i < n; i++) {
		len += strlen(args[i]) + 1;
		if (!strncmp(args[i], "console=", 8))
			has_console = true;
	}
	s = malloc(len);
	if (!s)
		die_host("out of memory");
	strcpy(s, has_console ? "" : console);
	strcat(s, defaults);
	for (int i = 0; i < n; i++) {
		strcat(s, " ");
		strcat(s, args[i]);
	}
	return s;
}

enum { OPT_VERSION = 256, OPT_CPUS };

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "tunnet", required_argument, NULL, 't' },
		{ "block", required_argument, NULL, 'b' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	u64 n;
	int c;

	o->ncpus = 1;
	opterr = 0;
	/* "+": stop at the first operand, so the guest's arguments (which
	 * may start with '-') are never taken for ours. */
	while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			verbose_on = true;
			verbose("lguest %s", LGUEST_VERSION);	/* starts the trace clock */
			break;
		case 't':
			if (o->n_nics == MAX_NICS)
				die_input("at most %d --tunnet cards", MAX_NICS);
			o->nics[o->n_nics++] = optarg;
			break;
		case 'b':
			if (o->n_disks == MAX_DISKS)
				die_input("at most %d --block disks (vda to vdz)", MAX_DISKS);
			o->disks[o->n_disks++] = optarg;
			break;
		case 'i':
			if (o->n_initrds == MAX_INITRDS)
				die_input("at most %d --initrd files", MAX_INITRDS);
			o->initrds[o->n_initrds++] = optarg;
			break;
		case OPT_CPUS:
			if (!parse_u64(optarg, &n) || n < 1 || n > MAX_CPUS)
				die_input("--cpus=%s: give a number of vCPUs from 1 to %d",
					    optarg, MAX_CPUS);
			o->ncpus = n;
			break;
		case 'h':
			printf("%s\n\n%s", usage_line, help_text);
			exit(0);
		case OPT_VERSION:
			printf("lguest %s\n", LGUEST_VERSION);
			exit(0);
		default:
			if (optopt)
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind < 2)
		usage_error("missing %s", argc - optind == 0 ? "<mem-in-mb> and vmlinux" : "vmlinux");
	o->mem_mib = parse_mem(argv[optind]);
	o->kernel = argv[optind + 1];
	o->cmdline = build_cmdline(argv + optind + 2, argc - optind - 2);
}

static struct serial *console_uart;
static struct vcon *console_hvc;
static bool input_to_hvc;

/*
 * Typed input goes to the console the guest's command line names last
 * (that one becomes /dev/console): hvc0 means virtio-console, anything
 * else the serial port.  Output from both reaches our stdout.
 */
static size_t console_sink(void *arg, const u8 *buf, size_t len)
{
	if (input_to_hvc)
		return vcon_input(console_hvc, buf, len);
	return serial_input(console_uart, buf, len);
}

static bool cmdline_console_is_hvc(const char *cmdline)
{
	const char *p = cmdline, *last = NULL;

	while ((p = strstr(p, "console=")) != NULL) {
		if (p == cmdline || p[-1] == ' ')
			last = p + 8;
		p += 8;
	}
	return last && !strncmp(last, "hvc", 3);
}

static void console_has_room(void *arg)
{
	term_resume();
}

static void guest_reset(void)
{
	vm_stop(EXIT_GUEST_DONE);
}

static void guest_poweroff(void)
{
	vm_stop(EXIT_GUEST_DONE);
}

static void guest_panicked(void)
{
	verbose("pvpanic: the guest panicked");
	vm_stop(EXIT_GUEST_PANIC);
}

/* Ctrl-A x: the user ends the guest as if it had powered off. */
static void user_quit(void)
{
	vm_stop(EXIT_GUEST_DONE);
}

static void dump_devices(void);

/*
 * SIGINT/SIGTERM/SIGHUP: stop the guest in order, from the main loop.
 * SIGUSR2: print every queue's state and carry on (a guest that seems
 * stuck: is it waiting for us?).
 */
static void signal_seen(void *arg, u32 events)
{
	struct signalfd_siginfo si;
	int fd = *(int *)arg;

	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGUSR2) {
		dump_devices();
		return;
	}
	verbose("signal %u: stopping the guest", si.ssi_signo);
	vm_stop(128 + si.ssi_signo);
}

static int setup_signals(void)
{
	static int sfd;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2);
	/* Blocked in every thread (threads inherit this mask), taken by the
	 * main loop through a signalfd: cleanup then runs in one place. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0)
		return fail("signalfd: %s", strerror(errno));
	return loop_add(sfd, EPOLLIN, signal_seen, &sfd);
}

static int setup_legacy_devices(void)
{
	console_uart = serial_create(0x3f8, 4, STDOUT_FILENO);
	if (!console_uart || i8042_create(guest_reset) || rtc_create() ||
	    acpi_pm_create(guest_poweroff) || pvpanic_create(guest_panicked))
		return -1;
	serial_set_room_callback(console_uart, console_has_room, NULL);
	return term_init(console_sink, NULL, user_quit);
}

/* Every virtio device, in PCI order, for the exit report. */
static struct virtio_dev *virtio_devs[MAX_VIRTIO_DEVS];
static int n_virtio_devs;

/* Put a virtio device on the PCI bus; its failure is the user's input. */
static void add_virtio(struct virtio_dev *dev, struct guest_mem *gm)
{
	dev->gm = gm;
	if (virtio_pci_add(dev))
		die_host("%s", last_error());
	virtio_devs[n_virtio_devs++] = dev;
}

/* Each device with its PCI slot ("00:03.0"), to fn. */
static void for_each_device(void (*fn)(struct virtio_dev *, const char *))
{
	char where[16];

	for (int i = 0; i < n_virtio_devs; i++) {
		snprintf(where, sizeof(where), "00:%02x.0", virtio_pci_dev(virtio_devs[i])->slot);
		fn(virtio_devs[i], where);
	}
}

/* Under --verbose, at exit: what each device did (see virtio_report). */
static void report_devices(void)
{
	for_each_device(virtio_report);
}

/* SIGUSR2: where the UART, every queue and the vCPUs stand (virtio_dump,
 * vm_dump). */
static void dump_devices(void)
{
	serial_dump(console_uart);
	for_each_device(virtio_dump);
	vm_dump();
}

/*
 * The PCI bus and the virtio devices the command line asked for.  A bad
 * disk file is the user's mistake: one line, status 2.
 */
static void setup_pci_devices(const struct options *o, struct guest_mem *gm)
{
	struct virtio_dev *dev;

	if (pci_init())
		die_host("%s", last_error());
	for (int i = 0; i < o->n_disks; i++) {
		if (blk_device_create(o->disks[i], i, &dev))
			die_input("%s", last_error());
		add_virtio(dev, gm);
	}
	for (int i = 0; i < o->n_nics; i++) {
		if (net_device_create(o->nics[i], i, &dev))
			die_input("%s", last_error());
		add_virtio(dev, gm);
	}
	/* The seed's own console (hvc0), and entropy for the guest's
	 * early random pool: always there, cheap when unused. */
	dev = vcon_create(STDOUT_FILENO, &console_hvc);
	if (!dev)
		die_host("%s", last_error());
	vcon_set_room_callback(console_hvc, console_has_room, NULL);
	add_virtio(dev, gm);
	dev = rng_create();
	if (!dev)
		die_host("%s", last_error());
	add_virtio(dev, gm);
	input_to_hvc = cmdline_console_is_hvc(o->cmdline);
}

/*
 * Our own cost in memory: resident set minus the guest pages the guest
 * touched.  Printed under --verbose; `make bench` reads it.
 */
static void report_memory(const struct guest_mem *gm)
{
	char line[256];
	u64 rss_kib = 0, guest_kib;
	FILE *f;

	if (!verbose_on || !(f = fopen("/proc/self/status", "r")))
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu kB", (unsigned long long *)&rss_kib) == 1)
			break;
	fclose(f);
	guest_kib = guest_mem_resident(gm) >> 10;
	verbose("memory: RSS %llu KiB, guest RAM touched %llu KiB, launcher overhead %lld KiB",
		(unsigned long long)rss_kib, (unsigned long long)guest_kib,
		(long long)rss_kib - (long long)guest_kib);
}

/* The PCI bus's legacy interrupt lines, for the MP table. */
static void collect_pci_irq(void *arg, u8 slot, u8 pin, u32 gsi)
{
	struct boot_setup *bs = arg;
	static struct boot_pci_irq irqs[BOOT_MAX_PCI_IRQS];

	if (bs->n_pci_irqs == BOOT_MAX_PCI_IRQS)
		return;
	irqs[bs->n_pci_irqs++] = (struct boot_pci_irq){ slot, pin, gsi };
	bs->pci_irqs = irqs;
}

static void serve(int stop_fd)
{
	loop_run_until(stop_fd);
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct guest_mem gm;
	struct boot_entry be;
	struct boot_setup bs;
	const char *env;
	u64 rsdp;
	int status;

	parse_args(argc, argv, &o);
	if (setup_signals())
		die_host("%s", last_error());

	if (guest_mem_init(&gm, o.mem_mib << 20))
		die_input("%s", last_error());
	verbose("guest RAM: %llu MiB at %p", (unsigned long long)o.mem_mib, gm.host);
	/* Devices before the kernel: the MP table describes their interrupts. */
	setup_pci_devices(&o, &gm);
	/* The VM takes shape while the kernel loads; a bad kernel is still
	 * the first thing we report. */
	vm_create_begin(&gm, o.ncpus);

	bs = (struct boot_setup){
		.kernel_path = o.kernel,
		.initrd_paths = o.initrds,
		.n_initrd = o.n_initrds,
		.cmdline = o.cmdline,
		.ncpus = o.ncpus,
		.cache_async = true,
	};
	pci_for_each_irq(collect_pci_irq, &bs);
	env = getenv("LGUEST_NO_HOST_DECOMPRESS");
	bs.no_host_decompress = env && *env && strcmp(env, "0");
	if (x86_boot_load(&gm, &bs, &be))
		die_input("%s", last_error());
	/* ACPI: how a stock kernel finds its off switch (and its CPUs). */
	if (acpi_build(&gm, o.ncpus, &rsdp))
		die_host("%s", last_error());
	verbose("kernel loaded as %s, entry %#llx", be.how, (unsigned long long)be.rip);
	verbose("command line: %s", o.cmdline);

	if (vm_create_end())
		die_input("%s", last_error());
	if (host_kvm_is_software())
		warn_user("this host's KVM has no hardware virtualization (no vmx/svm; "
			  "kvm_pvm?): a stock kernel will run very slowly, if at all");
	if (setup_legacy_devices() || vm_setup_vcpus(&be))
		die_host("%s", last_error());

	status = vm_run_vcpus(serve);
	verbose("guest stopped, exit status %d", status);
	report_devices();
	report_memory(&gm);
	lguest_exit(status);
}
