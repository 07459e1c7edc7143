/*
 * The operator's key files, as cfr-keygen(8) writes them: one line each,
 * "cfr-acct-public-key BASE64" and "cfr-acct-private-key BASE64". The label
 * is there so a private key given where the public one belongs is refused
 * instead of silently sealing records nobody can open. A public key that
 * others may rewrite is refused too: whoever swaps it in reads every
 * record sealed after.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "records.h"

static int read_key_fd(int fd, const char *path, const char *label, uint8_t key[CFR_KEY_BYTES],
                       bool private_key, struct cfr_rec_error *err)
{
	char buf[256];
	struct stat st;
	size_t llen = strlen(label), len, bin_len;
	ssize_t n;
	int ret;

	if (fstat(fd, &st) < 0) {
		ret = -errno;
		cfr_rec_fail(err, "%s: cannot stat: %s", path, strerror(errno));
		goto out;
	}
	if (!private_key && (st.st_mode & (S_IWGRP | S_IWOTH))) {
		cfr_rec_fail(
		    err,
		    "%s: public key is writable by others (mode %04o): whoever replaces it "
		    "reads the records; run chmod go-w %s",
		    path, (unsigned)(st.st_mode & 07777), path);
		ret = -EPERM;
		goto out;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		ret = -errno;
		cfr_rec_fail(err, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		ret = -errno;
		cfr_rec_fail(err, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	if (len <= llen + 1 || strncmp(buf, label, llen) != 0 || buf[llen] != ' ') {
		const char *other = private_key ? CFR_PUBLIC_KEY_LABEL : CFR_PRIVATE_KEY_LABEL;

		if (strncmp(buf, other, strlen(other)) == 0)
			ret = cfr_rec_fail(err, "%s: this is a %s key file, a %s one is needed",
			                   path, private_key ? "public" : "private",
			                   private_key ? "private" : "public");
		else
			ret = cfr_rec_fail(err,
			                   "%s: not a cfr key file (expected a line '%s BASE64', "
			                   "as cfr-keygen writes)",
			                   path, label);
		goto out;
	}
	/* Like ssh: a private key others can read is no longer private. */
	if (private_key && (st.st_mode & 0077)) {
		cfr_rec_fail(err,
		             "%s: private key is accessible by others (mode %04o); "
		             "run chmod 600 %s",
		             path, (unsigned)(st.st_mode & 07777), path);
		ret = -EACCES;
		goto out;
	}
	if (sodium_base642bin(key, CFR_KEY_BYTES, buf + llen + 1, len - llen - 1, NULL, &bin_len,
	                      NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bin_len != CFR_KEY_BYTES) {
		ret =
		    cfr_rec_fail(err, "%s: the key is not %d bytes of base64", path, CFR_KEY_BYTES);
		goto out;
	}
	ret = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	return ret;
}

static int read_key(const char *path, const char *label, uint8_t key[CFR_KEY_BYTES],
                    bool private_key, struct cfr_rec_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0) {
		ret = -errno;
		cfr_rec_fail(err, "%s: cannot open: %s", path, strerror(errno));
		return ret;
	}
	ret = read_key_fd(fd, path, label, key, private_key, err);
	close(fd);
	return ret;
}

int cfr_key_read_public(const char *path, uint8_t pk[CFR_KEY_BYTES], struct cfr_rec_error *err)
{
	return read_key(path, CFR_PUBLIC_KEY_LABEL, pk, false, err);
}

int cfr_key_read_public_fd(int fd, const char *path, uint8_t pk[CFR_KEY_BYTES],
                           struct cfr_rec_error *err)
{
	return read_key_fd(fd, path, CFR_PUBLIC_KEY_LABEL, pk, false, err);
}

int cfr_key_read_private(const char *path, uint8_t sk[CFR_KEY_BYTES], uint8_t pk[CFR_KEY_BYTES],
                         struct cfr_rec_error *err)
{
	int ret = read_key(path, CFR_PRIVATE_KEY_LABEL, sk, true, err);

	if (ret == 0 && crypto_scalarmult_base(pk, sk) != 0)
		ret = cfr_rec_fail(err, "%s: not a valid X25519 private key", path);
	return ret;
}
