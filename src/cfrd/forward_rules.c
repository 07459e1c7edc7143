/*
 * Forwarding rules a fast path would skip. A packet a fast path rewrites
 * and sends itself (TC, XDP) never meets netfilter's forward hook, so an
 * operator's rules there would silently stop applying to most subscriber
 * traffic: cfrd counts them before it turns a fast path on.
 */
#include "forward_rules.h"

#include <errno.h>
#include <json-c/json.h>
#include <nftables/libnftables.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress_guard.h"
#include "log.h"

/*
 * Hooks whose rules a forwarded packet meets and a fast-path packet skips:
 * every chain at forward, and filter chains at prerouting and postrouting
 * (NAT chains there are for other traffic: cfrd translates these packets).
 */
static bool skipped_hook(const char *family, const char *type, const char *hook)
{
	if (strcmp(family, "ip") != 0 && strcmp(family, "ip6") != 0 && strcmp(family, "inet") != 0)
		return false;
	if (strcmp(hook, "forward") == 0)
		return true;
	return strcmp(type, "filter") == 0 &&
	       (strcmp(hook, "prerouting") == 0 || strcmp(hook, "postrouting") == 0);
}

static const char *json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
	           ? json_object_get_string(v)
	           : "";
}

/* Chains the fast path would skip: family, table and name, as nft names them. */
#define SKIPPED_MAX 64
struct skipped {
	const char *family, *table, *name;
	unsigned rules;
	bool drops; /* its policy is drop: as much a rule as any */
};

/*
 * From <json>, the output of `nft -j list ruleset`: how many rules (a base
 * chain whose policy is drop counts as one) hooks the fast path skips hold
 * outside cfrd's own table inet cfr_guard, whose promises the fast path
 * keeps itself (cfrd(8), AF_XDP). <what> names the first chain with any.
 * Returns the count, or -EINVAL if <json> is not such a listing. Beyond
 * SKIPPED_MAX such chains, the rest count one each.
 */
int cfrd_forward_rules_in(const char *json, char *what, size_t what_size)
{
	struct skipped chains[SKIPPED_MAX];
	struct json_object *root = json_tokener_parse(json), *list, *o;
	unsigned n_chains = 0, overflow = 0;
	int total = 0;
	size_t n;

	if (what_size)
		what[0] = '\0';
	if (root == NULL || !json_object_object_get_ex(root, "nftables", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		json_object_put(root);
		return -EINVAL;
	}
	n = json_object_array_length(list);
	for (size_t i = 0; i < n; i++) {
		struct json_object *item = json_object_array_get_idx(list, i);
		const char *family, *table;

		if (!json_object_object_get_ex(item, "chain", &o))
			continue;
		family = json_str(o, "family");
		table = json_str(o, "table");
		if (!skipped_hook(family, json_str(o, "type"), json_str(o, "hook")) ||
		    (strcmp(family, "inet") == 0 && strcmp(table, CFRD_GUARD_TABLE) == 0))
			continue;
		if (n_chains == SKIPPED_MAX) {
			overflow++;
			continue;
		}
		chains[n_chains++] = (struct skipped){
		    .family = family,
		    .table = table,
		    .name = json_str(o, "name"),
		    .drops = strcmp(json_str(o, "policy"), "drop") == 0,
		};
	}
	for (size_t i = 0; i < n && n_chains > 0; i++) {
		struct json_object *item = json_object_array_get_idx(list, i);
		const char *family, *table, *chain;

		if (!json_object_object_get_ex(item, "rule", &o))
			continue;
		family = json_str(o, "family");
		table = json_str(o, "table");
		chain = json_str(o, "chain");
		for (unsigned c = 0; c < n_chains; c++)
			if (strcmp(chains[c].name, chain) == 0 &&
			    strcmp(chains[c].table, table) == 0 &&
			    strcmp(chains[c].family, family) == 0) {
				chains[c].rules++;
				break;
			}
	}
	for (unsigned c = 0; c < n_chains; c++) {
		unsigned count = chains[c].rules + chains[c].drops;

		if (count > 0 && total == 0 && what_size)
			snprintf(what, what_size, "table %s %s chain %s%s", chains[c].family,
			         chains[c].table, chains[c].name,
			         chains[c].drops ? ", policy drop" : "");
		total += (int)count;
	}
	if (overflow > 0 && total == 0 && what_size)
		snprintf(what, what_size, "more than %d chains", SKIPPED_MAX);
	total += (int)overflow;
	json_object_put(root);
	return total;
}

/* The namespace's ruleset as `nft -j list ruleset` prints it, into <out> (malloc'd). */
static int list_ruleset(char **out)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
	const char *buf, *err;
	int ret = 0;

	if (nft == NULL)
		return -ENOMEM;
	/* Terse: set elements are not rules, and a large set would only fill the buffer. */
	nft_ctx_output_set_flags(nft, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_TERSE);
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	if (nft_run_cmd_from_buffer(nft, "list ruleset") != 0) {
		err = nft_ctx_get_error_buffer(nft);
		log_error("cannot list the nftables ruleset: %.*s",
		          (int)strcspn(err ? err : "", "\n"), err ? err : "");
		ret = -EIO;
	} else {
		buf = nft_ctx_get_output_buffer(nft);
		*out = strdup(buf ? buf : "");
		ret = *out ? 0 : -ENOMEM;
	}
	nft_ctx_free(nft);
	return ret;
}

/*
 * iptables-legacy rules live outside nftables, where cfrd cannot read them;
 * its tables show in /proc once something used them in this namespace.
 */
static bool legacy_tables(void)
{
	static const char *const files[] = {"/proc/net/ip_tables_names",
	                                    "/proc/net/ip6_tables_names"};
	bool any = false;

	for (unsigned i = 0; i < 2; i++) {
		FILE *f = fopen(files[i], "re");

		any |= f != NULL && fgetc(f) != EOF;
		if (f)
			fclose(f);
	}
	return any;
}

int cfrd_forward_rules_count(char *what, size_t what_size)
{
	char *json = NULL;
	int ret = list_ruleset(&json);

	if (ret == 0)
		ret = cfrd_forward_rules_in(json, what, what_size);
	free(json);
	if (legacy_tables())
		log_warn(
		    "iptables-legacy tables exist; cfrd cannot read their rules, and fast-path "
		    "packets skip them");
	return ret;
}
