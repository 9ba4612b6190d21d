/*
 * fuzz_kernel.c: libFuzzer target for the boot loader, fed any file as
 * the kernel.
 *
 * The kernel file is the user's, not the guest's, but a wrong one must
 * still end in one clear line, never in a crash or a write outside guest
 * RAM: a truncated bzImage, a setup header whose offsets point anywhere,
 * an ELF whose segments overlap or overflow, a relocation table that runs
 * off its buffer, a compressed payload that lies about its size.  Each
 * input is written to a memfd and booted by x86_boot_load(), as main()
 * would boot it, into 64 MiB of guest RAM (the decompressed-kernel cache
 * off).  The seeds in fuzz/corpus/kernel are test_boot.c's fixtures: an
 * ELF vmlinux and bzImages with gzip, xz, zstd and lz4 payloads and one
 * of boot protocol 2.10 (refused: it has no 64-bit entry point).
 *
 * Checks beyond ASan and UBSan: a refusal says why on one line; a boot
 * starts the CPU inside RAM with boot_params where they belong.
 */
#include "x86/boot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct guest_mem gm;
static char path[64];
static int fd = -1;

static void setup(void)
{
	if (guest_mem_init(&gm, MiB(64)) < 0)
		abort();
	fd = memfd_create("fuzz-kernel", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static const char *const no_initrd[] = { NULL };
	struct boot_setup s = {
		.kernel_path = path,
		.initrd_paths = no_initrd,
		.cmdline = "console=ttyS0",
		.ncpus = 1,
		.cache_dir = "",
	};
	struct boot_entry e;

	if (fd < 0)
		setup();
	if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	/* The loader expects fresh RAM: zero where the kernel goes. */
	if (guest_zero(&gm, 0, gm.size) < 0)
		abort();
	/* No line left over from the last input to pass for this one's. */
	fail("%s", "");
	if (x86_boot_load(&gm, &s, &e) < 0) {
		const char *why = last_error();

		if (!*why || strchr(why, '\n') || !strcmp(why, "unknown error"))
			abort();
		return 0;
	}
	if (e.rip >= gm.size || e.rsi != BOOT_PARAMS_ADDR || !e.how)
		abort();
	return 0;
}
