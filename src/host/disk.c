/*
 * disk.c: from "--block=FILE,ro" to an open, locked, checked file.
 *
 * Everything here is about the user's input, so every refusal is a single
 * line that names the file and says what to do about it.  The device
 * itself (virtio/blk.c) only ever sees a file descriptor and a size.
 */
#include "host/disk.h"
#include "virtio/blk.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Is there anything at this path?  Lets "my,disk.img" be a file name. */
static bool path_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* The option's grammar lives here, and only here. */
int disk_parse_spec(const char *spec, struct disk_spec *out)
{
	const char *comma = strrchr(spec, ',');
	size_t len = strlen(spec);

	out->ro = false;
	/* A suffix we know is an option; anything else after a comma is a
	 * typo unless the whole thing names an existing file. */
	if (comma && !path_exists(spec)) {
		if (!strcmp(comma + 1, "ro"))
			out->ro = true;
		else if (strcmp(comma + 1, "rw"))
			return fail("--block=%s: unknown option '%s'; use FILE, FILE,ro or FILE,rw",
				    spec, comma + 1);
		len = comma - spec;
	}
	if (len == 0)
		return fail("--block=%s: no file name; use --block=FILE[,ro]", spec);
	if (len >= sizeof(out->path))
		return fail("--block: file name too long");
	memcpy(out->path, spec, len);
	out->path[len] = '\0';
	return 0;
}

/* Why open() failed, and what the user can do about it. */
static int open_failed(const struct disk_spec *d)
{
	int err = errno;

	if (err == ENOENT)
		return fail("disk image %s does not exist; create one first, e.g. "
			    "truncate -s 1G %s", d->path, d->path);
	if (!d->ro && (err == EACCES || err == EPERM || err == EROFS))
		return fail("cannot open disk image %s for writing: %s; "
			    "use --block=%s,ro for a read-only disk", d->path,
			    strerror(err), d->path);
	if (err == EISDIR)
		return fail("%s is a directory; --block needs a disk image file", d->path);
	return fail("cannot open disk image %s: %s", d->path, strerror(err));
}

/*
 * Regular files and block devices only, with a size the guest can use.
 * (A size that is not whole sectors would leave a tail the guest can
 * never reach, which is more likely a mistake than an intent.)
 */
static int check_file(const struct disk_spec *d, int fd, const struct stat *st, u64 *size)
{
	off_t end;

	if (S_ISDIR(st->st_mode))
		return fail("%s is a directory; --block needs a disk image file", d->path);
	if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
		return fail("%s is not a regular file or block device; "
			    "--block needs a disk image file", d->path);
	/* lseek works for block devices too, where st_size is 0. */
	end = lseek(fd, 0, SEEK_END);
	if (end < 0)
		return fail("cannot find the size of %s: %s", d->path, strerror(errno));
	if (end == 0)
		return fail("disk image %s is empty; give it a size, e.g. "
			    "truncate -s 1G %s", d->path, d->path);
	if (end % 512)
		return fail("disk image %s is %lld bytes, not a multiple of 512; "
			    "resize it, e.g. truncate -s %lldK %s", d->path,
			    (long long)end, ((long long)end + 1023) / 1024, d->path);
	*size = end;
	return 0;
}

/*
 * Two launchers writing one image corrupt it, and a reader next to a
 * writer sees garbage: exclusive lock for read-write, shared for
 * read-only, and never wait for it.
 */
static int lock_file(const struct disk_spec *d, int fd)
{
	if (flock(fd, (d->ro ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK)
		return fail("%s is in use by another lguest; stop it, or give this "
			    "one a copy", d->path);
	return fail("cannot lock %s: %s", d->path, strerror(errno));
}

/* A stable number per file (FNV-1a of device and inode), for GET_ID. */
static u64 file_id(const struct stat *st)
{
	u64 words[2] = { st->st_dev, st->st_ino };
	const u8 *p = (const u8 *)words;
	u64 h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < sizeof(words); i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/* Open in the mode asked for, then check and lock before anyone uses it. */
int disk_open(const struct disk_spec *d, int *fd_out, u64 *size, u64 *id)
{
	struct stat st;
	int fd;

	fd = open(d->path, (d->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0)
		return open_failed(d);
	if (fstat(fd, &st) < 0) {
		fail("cannot stat %s: %s", d->path, strerror(errno));
		goto out;
	}
	if (check_file(d, fd, &st, size) < 0 || lock_file(d, fd) < 0)
		goto out;
	if (id)
		*id = file_id(&st);
	*fd_out = fd;
	return 0;
out:
	close(fd);
	return -1;
}

/* main()'s one call per --block: all the policy above, then the device. */
struct disk_stop {
	struct virtio_dev *dev;
	int fd;
};

/*
 * An orderly stop (the guest powered off, SIGTERM, Ctrl-A x): let the
 * requests in flight finish (reset waits for them), then push what they
 * wrote to the disk, as a real machine's firmware would flush its disks.
 */
static void disk_stop(void *arg)
{
	struct disk_stop *ds = arg;

	ds->dev->ops->reset(ds->dev);
	if (fdatasync(ds->fd) < 0)
		verbose("disk: fdatasync at exit: %s", strerror(errno));
}

int blk_device_create(const char *spec, int index, struct virtio_dev **out)
{
	struct disk_stop *ds;
	struct disk_spec d;
	char serial[32];
	u64 size, id;
	int fd;

	if (index < 0 || index >= 26)
		return fail("--block=%s: at most 26 disks (vda to vdz)", spec);
	if (disk_parse_spec(spec, &d) < 0 || disk_open(&d, &fd, &size, &id) < 0)
		return -1;
	/* 19 characters: the serial field holds 20 and Linux shows it
	 * in /sys/block/vdX/serial and /dev/disk/by-id. */
	snprintf(serial, sizeof(serial), "lg-%016llx", (unsigned long long)id);
	*out = virtio_blk_new(fd, size, d.ro, serial, 0);
	if (!*out) {
		close(fd);
		return -1;
	}
	ds = malloc(sizeof(*ds));
	if (ds) {
		*ds = (struct disk_stop){ *out, fd };
		at_cleanup(disk_stop, ds);
	}
	verbose("vd%c: %s, %llu sectors%s, serial %s", 'a' + index, d.path,
		(unsigned long long)(size / 512), d.ro ? ", read-only" : "", serial);
	return 0;
}
