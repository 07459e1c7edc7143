/*
 * SipHash-1-3 (src/lib/siphash.h), which keys the flow indexes: the 64
 * known answers published with the reference test suite (key 00..0f,
 * messages 00, 00 01, ... of length 0 to 63; the vectors Rust's
 * SipHasher13 and the siphasher crate check against), so every tail length
 * and every number of whole blocks is covered; and the same answers from
 * an unaligned buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "cfr/internal/siphash.h"

static const uint64_t vectors[64] = {
    0xabac0158050fc4dcull, 0xc9f49bf37d57ca93ull, 0x82cb9b024dc7d44dull, 0x8bf80ab8e7ddf7fbull,
    0xcf75576088d38328ull, 0xdef9d52f49533b67ull, 0xc50d2b50c59f22a7ull, 0xd3927d989bb11140ull,
    0x369095118d299a8eull, 0x25a48eb36c063de4ull, 0x79de85ee92ff097full, 0x70c118c1f94dc352ull,
    0x78a384b157b4d9a2ull, 0x306f760c1229ffa7ull, 0x605aa111c0f95d34ull, 0xd320d86d2a519956ull,
    0xcc4fdd1a7d908b66ull, 0x9cf2689063dbd80cull, 0x8ffc389cb473e63eull, 0xf21f9de58d297d1cull,
    0xc0dc2f46a6cce040ull, 0xb992abfe2b45f844ull, 0x7ffe7b9ba320872eull, 0x525a0e7fdae6c123ull,
    0xf464aeb267349c8cull, 0x45cd5928705b0979ull, 0x3a3e35e3ca9913a5ull, 0xa91dc74e4ade3b35ull,
    0xfb0bed02ef6cd00dull, 0x88d93cb44ab1e1f4ull, 0x540f11d643c5e663ull, 0x2370dd1f8c21d1bcull,
    0x81157b6c16a7b60dull, 0x4d54b9e57a8ff9bfull, 0x759f12781f2a753eull, 0xcea1a3bebf186b91ull,
    0x2cf508d3ada26206ull, 0xb6101c2da3c33057ull, 0xb3f47496ae3a36a1ull, 0x626b57547b108392ull,
    0xc1d2363299e41531ull, 0x667cc1923f1ad944ull, 0x65704ffec8138825ull, 0x24f280d1c28949a6ull,
    0xc2ca1cedfaf8876bull, 0xc2164bfc9f042196ull, 0xa16e9c9368b1d623ull, 0x49fb169c8b5114fdull,
    0x9f3143f8df074c46ull, 0xc6fdaf2412cc86b3ull, 0x7eaf49d10a52098full, 0x1cf313559d292f9aull,
    0xc44a30dda2f41f12ull, 0x36fae98943a71ed0ull, 0x318fb34c73f0bce6ull, 0xa27abf3670a7e980ull,
    0xb4bcc0db243c6d75ull, 0x23f8d852fdb71513ull, 0x8f035f4da67d8a08ull, 0xd89cd0e5b7e8f148ull,
    0xf6f4e6bcf7a644eeull, 0xaec59ad80f1837f2ull, 0xc3b2f6154b6694e0ull, 0x9d199062b7bbb3a8ull,
};

static void key_and_message(struct cfr_sipkey *key, uint8_t msg[64])
{
	uint8_t k[16];
	unsigned i;

	for (i = 0; i < 16; i++)
		k[i] = (uint8_t)i;
	for (i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	*key = cfr_sipkey_from(k);
}

static void known_answers(void **state)
{
	struct cfr_sipkey key;
	uint8_t msg[64];
	unsigned len;

	(void)state;
	key_and_message(&key, msg);
	assert_int_equal(key.k0, 0x0706050403020100ull);
	assert_int_equal(key.k1, 0x0f0e0d0c0b0a0908ull);
	for (len = 0; len < 64; len++)
		assert_int_equal(cfr_siphash13(&key, msg, len), vectors[len]);
}

static void unaligned_input(void **state)
{
	struct cfr_sipkey key;
	uint8_t msg[64], shifted[64 + 7];
	unsigned len, off;

	(void)state;
	key_and_message(&key, msg);
	for (off = 1; off < 8; off++) {
		memcpy(shifted + off, msg, sizeof(msg));
		for (len = 0; len < 64; len++)
			assert_int_equal(cfr_siphash13(&key, shifted + off, len), vectors[len]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(known_answers),
	    cmocka_unit_test(unaligned_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
