/*
 * cfr-keygen: make the operator's key pair for sealed accountability
 * records (cfr-keygen(8)). The public key goes into cfrd's configuration;
 * the private key belongs off the relay, with whoever answers complaints.
 *
 * Files are created with O_EXCL (an existing key is never overwritten: it
 * may be the only way to read years of records) and the private one with
 * mode 0600 from the start, never chmod-ed afterwards. The line format is
 * the one src/records/keyfile.c reads; this program links only libsodium.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PUBLIC_LABEL  "cfr-acct-public-key"
#define PRIVATE_LABEL "cfr-acct-private-key"

static const char usage_text[] =
    "Usage: cfr-keygen -o PREFIX        writes PREFIX.pub and PREFIX.key\n"
    "       cfr-keygen PUBFILE KEYFILE\n"
    "Make the key pair that seals cfrd's accountability records.\n"
    "\n"
    "  -o, --output PREFIX  write PREFIX.pub (public) and PREFIX.key (private, mode 0600)\n"
    "  -h, --help           show this help and exit\n"
    "\n"
    "Existing files are never overwritten. Give cfrd the public key only\n"
    "([accounting] public-key); keep the private key for cfr-lookup, off the relay.\n"
    "See cfr-keygen(8).\n";

static int write_key(const char *path, const char *label, const unsigned char *key, mode_t mode)
{
	char line[128], b64[sodium_base64_ENCODED_LEN(crypto_box_PUBLICKEYBYTES,
	                                              sodium_base64_VARIANT_ORIGINAL)];
	int fd, len, ret = 0;

	sodium_bin2base64(b64, sizeof(b64), key, crypto_box_PUBLICKEYBYTES,
	                  sodium_base64_VARIANT_ORIGINAL);
	len = snprintf(line, sizeof(line), "%s %s\n", label, b64);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "cfr-keygen: %s: cannot create: %s%s\n", path, strerror(errno),
		        errno == EEXIST
		            ? " (remove it first if you really mean to replace that key)"
		            : "");
		goto out;
	}
	if (write(fd, line, (size_t)len) != len || fsync(fd) < 0) {
		ret = -errno;
		fprintf(stderr, "cfr-keygen: %s: cannot write: %s\n", path, strerror(errno));
		unlink(path);
	}
	close(fd);
out:
	sodium_memzero(line, sizeof(line));
	sodium_memzero(b64, sizeof(b64));
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
	char pub_path[4096], key_path[4096];
	const char *prefix = NULL;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
		switch (opt) {
		case 'o':
			prefix = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (prefix && optind == argc) {
		snprintf(pub_path, sizeof(pub_path), "%s.pub", prefix);
		snprintf(key_path, sizeof(key_path), "%s.key", prefix);
	} else if (!prefix && argc - optind == 2) {
		snprintf(pub_path, sizeof(pub_path), "%s", argv[optind]);
		snprintf(key_path, sizeof(key_path), "%s", argv[optind + 1]);
	} else {
		fputs(usage_text, stderr);
		return 2;
	}
	if (sodium_init() < 0) {
		fputs("cfr-keygen: cannot initialise libsodium\n", stderr);
		return 1;
	}
	crypto_box_keypair(pk, sk);
	/* Private key first: a public key whose private half was never saved is a trap. */
	ret = write_key(key_path, PRIVATE_LABEL, sk, 0600);
	sodium_memzero(sk, sizeof(sk));
	if (ret < 0)
		return 1;
	if (write_key(pub_path, PUBLIC_LABEL, pk, 0644) < 0) {
		unlink(key_path);
		return 1;
	}
	printf("public key:  %s (for cfrd's [accounting] public-key)\n"
	       "private key: %s (mode 0600: keep it off the relay, for cfr-lookup)\n",
	       pub_path, key_path);
	return 0;
}
