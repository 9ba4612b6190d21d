/*
 * test_boot_real.c: the loader against a real Debian kernel, when present.
 *
 * Synthetic kernels prove the logic; only a real one proves we read the
 * formats the way the kernel build writes them (xz with the x86 BCJ
 * filter, a stripped vmlinux, a relocation table of some 200,000
 * entries).  The diagnostics report how long each path takes.
 *
 * The kernel is the one `apt-get download linux-image-6.1.0-57-amd64`
 * plus `dpkg -x` leaves in /tmp/kpkg/x; LGUEST_TEST_KERNEL overrides it.
 * Without it every test is skipped.
 */
#include "tap.h"
#include "x86/x86.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEBIAN_KERNEL "/tmp/kpkg/x/boot/vmlinuz-6.1.0-57-amd64"
#define NTESTS 14

static struct guest_mem gm;

/* The payload on its own: decompress, parse, check every relocation. */
static void test_payload(const char *path)
{
	struct blob file, raw;
	struct bzimage bz;
	struct elf_image e;
	struct reloc_table r = { 0 };
	double t0;
	int rc;

	if (!ok(blob_map_file(&file, path) == 0 && bzimage_parse(&file, path, &bz) == 0,
		"%s parses as a bzImage", path)) {
		blob_free(&file);
		return;
	}
	ok(bz.payload && !strcmp(payload_format(bz.payload, bz.payload_size), "xz"),
	   "payload is xz");
	t0 = now_ms();
	if (!ok(bz.payload && payload_decompress(bz.payload, bz.payload_size, GiB(4), &raw) == 0,
		"payload decompresses")) {
		blob_free(&file);
		return;
	}
	tap_diag("xz decompression: %llu MiB in %.0f ms",
		 (unsigned long long)(raw.size >> 20), now_ms() - t0);
	rc = elf_parse(&e, "payload", raw.data, raw.size);
	ok(rc == 0 && e.base == MiB(16) && e.entry == MiB(16),
	   "vmlinux found: base %#llx, entry %#llx, %llu MiB", (unsigned long long)e.base,
	   (unsigned long long)e.entry, (unsigned long long)((e.end - e.base) >> 20));
	ok(rc == 0 && e.end - e.base <= bz.hdr.init_size, "vmlinux fits init_size");
	rc = rc ? rc : relocs_parse(&r, raw.data, raw.size, e.data_end);
	ok(rc == 0 && r.count[RELOC_32] && r.count[RELOC_32_INV] && r.count[RELOC_64],
	   "relocation table: %llu 32-bit, %llu inverse, %llu 64-bit",
	   (unsigned long long)r.count[RELOC_32], (unsigned long long)r.count[RELOC_32_INV],
	   (unsigned long long)r.count[RELOC_64]);
	rc = rc ? rc : relocs_check(&r, e.base, e.end);
	ok(rc == 0, "every relocation is inside the image");
	blob_free(&raw);
	blob_free(&file);
}

/* One whole boot, timed. */
static void timed_boot(struct boot_setup *s, const char *want, const char *what)
{
	struct boot_entry e;
	double t0;
	int rc;

	guest_mem_free(&gm);
	if (guest_mem_init(&gm, MiB(512)) < 0)
		abort();
	t0 = now_ms();
	rc = x86_boot_load(&gm, s, &e);
	tap_diag("%s: %.1f ms", what, now_ms() - t0);
	ok(rc == 0 && !strcmp(e.how, want), "%s: \"%s\" (%s)", what, want,
	   rc ? last_error() : e.how);
}

static void test_boots(const char *path)
{
	char dir[] = "/tmp/test_boot_real.XXXXXX", *cmd;
	struct boot_setup s = {
		.kernel_path = path, .cmdline = "console=ttyS0", .ncpus = 2,
	};
	struct boot_params *bp;

	if (!mkdtemp(dir))
		abort();
	s.cache_dir = dir;
	timed_boot(&s, "decompressed bzImage", "cold boot (decompress + cache write)");
	timed_boot(&s, "decompressed bzImage (cached)", "warm boot (cache hit)");
	bp = guest_ptr(&gm, BOOT_PARAMS_ADDR, sizeof(*bp));
	ok(bp->hdr.version == 0x20f && bp->hdr.type_of_loader == 0xff,
	   "zero page from the kernel's own header");
	ok(memcmp(guest_ptr(&gm, MiB(16), 4), "\x7f" "ELF", 4) != 0,
	   "at 16 MiB is the kernel text, not an ELF header");
	timed_boot(&s, "decompressed bzImage (cached)", "warm boot again");
	s.no_host_decompress = true;
	timed_boot(&s, "bzImage", "plain bzImage (guest decompresses)");
	s.no_host_decompress = false;
	s.cache_dir = "";
	timed_boot(&s, "decompressed bzImage", "no cache");
	if (asprintf(&cmd, "rm -rf %s", dir) >= 0 && system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	free(cmd);
}

int main(void)
{
	const char *path = getenv("LGUEST_TEST_KERNEL");
	int i;

	if (!path)
		path = DEBIAN_KERNEL;
	tap_plan(NTESTS);
	if (access(path, R_OK)) {
		for (i = 0; i < NTESTS; i++)
			ok(1, "# SKIP no kernel at %s", path);
		return tap_done();
	}
	test_payload(path);
	test_boots(path);
	guest_mem_free(&gm);
	return tap_done();
}
