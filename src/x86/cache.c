/*
 * cache.c: remembering decompressed kernels between boots.
 *
 * Decompressing a Debian kernel's xz payload costs about a second; reading
 * it back costs a few milliseconds.  So the payload, decompressed but not
 * relocated (each boot picks its own KASLR offset), is kept in
 * $XDG_CACHE_HOME/lguest (or ~/.cache/lguest) as <hash>.vmlinux, where the
 * hash is XXH3-128 of the whole bzImage: a different kernel, even one
 * rebuilt with the same version string, gets a different file.
 *
 * A cache must never be the reason a boot fails: every error here is a
 * verbose line and a return to the slow path.  Files are written to a
 * temporary name and renamed, so a reader sees a whole file or none; a
 * short or damaged one (a crash before the data reached the disk) fails
 * the size check or the same ELF and relocation checks a fresh payload
 * gets, and is rewritten.
 */
#include "x86/x86.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* The directory: explicit, or the XDG default; NULL when there is none. */
static char *cache_dir_path(const char *cache_dir)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *dir = NULL;
	int n = -1;

	if (cache_dir)
		n = asprintf(&dir, "%s", cache_dir);
	else if (xdg && xdg[0] == '/')
		n = asprintf(&dir, "%s/lguest", xdg);
	else if (home && home[0])
		n = asprintf(&dir, "%s/.cache/lguest", home);
	return n < 0 ? NULL : dir;
}

/* "" disables the cache; otherwise <dir>/<XXH3-128 of the file>.vmlinux. */
char *cache_path(const char *cache_dir, const struct blob *file)
{
	XXH128_canonical_t sum;
	char hex[2 * sizeof(sum.digest) + 1];
	char *dir, *path;
	size_t i;

	if (cache_dir && !cache_dir[0])
		return NULL;
	dir = cache_dir_path(cache_dir);
	if (!dir) {
		verbose("cache: no $XDG_CACHE_HOME or $HOME, not caching");
		return NULL;
	}
	XXH128_canonicalFromHash(&sum, XXH3_128bits(file->data, file->size));
	for (i = 0; i < sizeof(sum.digest); i++)
		snprintf(hex + 2 * i, 3, "%02x", sum.digest[i]);
	if (asprintf(&path, "%s/%s.vmlinux", dir, hex) < 0)
		path = NULL;
	free(dir);
	return path;
}

/* Map a cached payload if it has exactly the size the bzImage promises. */
int cache_read(const char *path, u64 expect_size, struct blob *out)
{
	struct stat st;
	void *p;
	int fd;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		verbose("cache: no %s", path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		verbose("cache: ignoring %s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((u64)st.st_size != expect_size) {
		verbose("cache: ignoring %s: %lld bytes, expected %llu", path,
			(long long)st.st_size, (unsigned long long)expect_size);
		close(fd);
		return -1;
	}
	/* We read every byte of it at once: populate the mapping up front. */
	p = mmap(NULL, expect_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		verbose("cache: cannot map %s: %s", path, strerror(errno));
		return -1;
	}
	out->data = p;
	out->size = expect_size;
	return 0;
}

/* mkdir -p, for ~/.cache/lguest on a machine that has no ~/.cache yet. */
static int make_dirs(char *dir)
{
	char *slash;

	for (slash = strchr(dir + 1, '/'); ; slash = strchr(slash + 1, '/')) {
		if (slash)
			*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -1;
		if (!slash)
			return 0;
		*slash = '/';
	}
}

/* write() may stop short (and caps one call near 2 GiB): loop. */
static int write_all(int fd, const u8 *p, u64 len)
{
	while (len) {
		ssize_t n = write(fd, p, MIN(len, GiB(1)));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * An unnamed file in dir (O_TMPFILE) that becomes path only once it is
 * whole: if lguest ends mid-write, nothing is left behind.  Where the
 * filesystem has no O_TMPFILE, a temporary name renamed into place.
 */
static int cache_open_tmp(const char *dir, const char *path, char **tmp)
{
	int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);

	*tmp = NULL;
	if (fd >= 0)
		return fd;
	if (asprintf(tmp, "%s.XXXXXX", path) < 0) {
		*tmp = NULL;
		return -1;
	}
	return mkstemp(*tmp);
}

static int cache_publish(int fd, const char *tmp, const char *path)
{
	char proc[64];

	if (tmp)
		return rename(tmp, path);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	/* linkat() will not replace: a stale (corrupt) entry goes first. */
	unlink(path);
	return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

/* Store the payload under path, whole or not at all. */
void cache_write(const char *path, const struct blob *payload)
{
	char *dir = strdup(path), *tmp = NULL, *slash;
	double t0 = now_ms();
	bool ok;
	int fd;

	slash = dir ? strrchr(dir, '/') : NULL;
	if (slash && slash != dir)
		*slash = '\0';
	if (!slash || make_dirs(dir) < 0) {
		verbose("cache: cannot create the directory for %s: %s", path, strerror(errno));
		goto out;
	}
	fd = cache_open_tmp(dir, path, &tmp);
	if (fd < 0) {
		verbose("cache: cannot create a file in %s: %s", dir, strerror(errno));
		goto out;
	}
	ok = write_all(fd, payload->data, payload->size) == 0;
	ok = ok && cache_publish(fd, tmp, path) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok) {
		verbose("cache: cannot write %s: %s", path, strerror(errno));
		if (tmp)
			unlink(tmp);
		goto out;
	}
	verbose("cache: stored %s (%llu MiB) in %.1f ms", path,
		(unsigned long long)(payload->size >> 20), now_ms() - t0);
out:
	free(tmp);
	free(dir);
}

struct cache_job {
	char *path;
	struct blob payload;
};

static void *cache_writer(void *arg)
{
	struct cache_job *job = arg;

	cache_write(job->path, &job->payload);
	blob_free(&job->payload);
	free(job->path);
	free(job);
	return NULL;
}

/*
 * Write the cache on a thread of its own, taking ownership of payload: the
 * guest can start while the file is written.  If lguest ends first, the
 * unnamed file simply vanishes and the next boot decompresses again.
 */
void cache_write_async(const char *path, struct blob *payload)
{
	struct cache_job *job = malloc(sizeof(*job));
	pthread_t t;

	if (job) {
		job->path = strdup(path);
		job->payload = *payload;
		if (job->path && pthread_create(&t, NULL, cache_writer, job) == 0) {
			pthread_detach(t);
			memset(payload, 0, sizeof(*payload));
			return;
		}
		free(job->path);
		free(job);
	}
	cache_write(path, payload);	/* no thread: write it now */
}
