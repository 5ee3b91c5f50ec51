/* Unit tests for repository object encoding and decoding. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/format.h"
#include "core/repo.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/compiler.h"

static void test_config(void)
{
  struct repo_config c = {.version = 1, .page_entries = 1024}, d;
  struct repo_keys k;
  memset(&k, 7, sizeof k);
  memcpy(c.id, "0123456789abcdef0123456789abcdef", 33);
  /* Version 1: clear, with a checksum line that catches a flipped byte. */
  char *t = config_encode(&c, NULL);
  check(t != NULL);
  check_int(config_decode(t, strlen(t), &d), ==, 0);
  check_str(d.id, c.id);
  check_int(d.page_entries, ==, 1024);
  check_int(d.encrypted, ==, 0);
  check_int(d.has_check, ==, 1);
  t[strlen("pilotlight-repository=1\nid=")] ^= 1;
  check_int(config_decode(t, strlen(t), &d), ==, -1);
  check(strstr(get_error(), "config-sha256") != NULL);
  free(t);
  /* An old version-1 config without the checksum is read, but every
   * required line must be there. */
  const char *old = "pilotlight-repository=1\nid=0123456789abcdef0123456789abcdef\n"
                    "chunk-hash=sha256\ncompression=zstd\nencryption=none\npage-entries=1\n";
  check_int(config_decode(old, strlen(old), &d), ==, 0);
  const char *missing = "pilotlight-repository=1\nid=0123456789abcdef0123456789abcdef\n"
                        "chunk-hash=sha256\nencryption=none\npage-entries=1\n";
  check_int(config_decode(missing, strlen(missing), &d), ==, -1);
  check(strstr(get_error(), "no compression= line") != NULL);
  const char *renamed = "pilotlight-repository=1\nid=0123456789abcdef0123456789abcdef\n"
                        "chunk-hasg=sha256\ncompression=zstd\nencryption=none\npage-entries=1\n";
  check_int(config_decode(renamed, strlen(renamed), &d), ==, -1);
  const char *twice = "pilotlight-repository=1\nid=0123456789abcdef0123456789abcdef\n"
                      "chunk-hash=sha256\ncompression=zstd\nencryption=none\npage-entries=1\n"
                      "page-entries=2\n";
  check_int(config_decode(twice, strlen(twice), &d), ==, -1);
  /* Object Lock lines: both or neither, and a mode it knows. */
  c.lock_days = 30;
  c.lock_mode = LOCK_MODE_COMPLIANCE;
  t = config_encode(&c, NULL);
  check(strstr(t, "\nobject-lock-days=30\nobject-lock-mode=compliance\n") != NULL);
  check_int(config_decode(t, strlen(t), &d), ==, 0);
  check_int(d.lock_days, ==, 30);
  check_int(d.lock_mode, ==, LOCK_MODE_COMPLIANCE);
  free(t);
  c.lock_days = 0;
  c.lock_mode = 0;
  const char *half = "pilotlight-repository=1\nid=0123456789abcdef0123456789abcdef\n"
                     "chunk-hash=sha256\ncompression=zstd\nencryption=none\npage-entries=1\n"
                     "object-lock-days=7\n";
  check_int(config_decode(half, strlen(half), &d), ==, -1);
  check(strstr(get_error(), "without object-lock-mode") != NULL);
  const char *odd = "pilotlight-repository=1\nid=0123456789abcdef0123456789abcdef\n"
                    "chunk-hash=sha256\ncompression=zstd\nencryption=none\npage-entries=1\n"
                    "object-lock-days=7\nobject-lock-mode=sometimes\n";
  check_int(config_decode(odd, strlen(odd), &d), ==, -1);
  check_int(get_errno(), ==, ENOTSUP);
  const char *zero = "pilotlight-repository=1\nid=0123456789abcdef0123456789abcdef\n"
                     "chunk-hash=sha256\ncompression=zstd\nencryption=none\npage-entries=1\n"
                     "object-lock-days=0\nobject-lock-mode=governance\n";
  check_int(config_decode(zero, strlen(zero), &d), ==, -1);
  /* Version 2: authenticated under the key. */
  t = config_encode(&c, &k);
  check_int(config_decode(t, strlen(t), &d), ==, 0);
  check_int(d.version, ==, 2);
  check_int(d.encrypted, ==, 1);
  check_int(config_check_mac(&d, t, &k), ==, 0);
  struct repo_keys other = k;
  other.mac[0] ^= 1;
  check_int(config_check_mac(&d, t, &other), ==, -1);
  t[strlen("pilotlight-repository=2\nid=")] ^= 1;
  check_int(config_decode(t, strlen(t), &d), ==, 0); /* still hex: only the MAC tells */
  check_int(config_check_mac(&d, t, &k), ==, -1);
  check(strstr(get_error(), "altered") != NULL);
  size_t cut = strstr(t, "config-mac=") - t;
  check_int(config_decode(t, cut, &d), ==, -1);
  free(t);
  const char *newer = "pilotlight-repository=3\nid=0123456789abcdef0123456789abcdef\n"
                      "page-entries=1\n";
  check_int(config_decode(newer, strlen(newer), &d), ==, -1);
  check(strstr(get_error(), "newer") != NULL);
  const char *enc = "pilotlight-repository=1\nid=0123456789abcdef0123456789abcdef\n"
                    "chunk-hash=sha256\ncompression=zstd\nencryption=aes\npage-entries=1\n";
  check_int(config_decode(enc, strlen(enc), &d), ==, -1);
  check_int(config_decode("hello\n", 6, &d), ==, -1);
}

static void test_snapshot(void)
{
  struct snapshot s = {0}, d;
  uint8_t *p1 = calloc(1, HASH_LEN), *p2 = malloc(HASH_LEN);
  memset(p2, 0xab, HASH_LEN);
  s.disk = "dc02";
  s.size = 3000000;
  s.block_size = 1 << 20;
  s.time = 1700000000;
  s.time_ns = 5;
  s.source = "/dev/with space%and\nnewline";
  s.cbt = "";
  s.host = "h";
  s.mode = "full";
  s.note = "";
  s.bytes_read = 7;
  s.used_end = 2999999;
  s.page_entries = 2;
  vec_push(&s.pages, p1);
  vec_push(&s.pages, p2);
  char *t = snapshot_encode(&s);
  check(t != NULL);
  check_int(snapshot_decode(t, strlen(t), &d), ==, 0);
  check_str(d.disk, "dc02");
  check_str(d.source, s.source);
  check_str(d.cbt, "");
  check_int(d.size, ==, 3000000);
  check_int(d.time_ns, ==, 5);
  check_int(d.bytes_read, ==, 7);
  check_int(d.pages.len, ==, 2);
  check(memcmp(d.pages.v[1], p2, HASH_LEN) == 0);
  check_str(d.parent, "");
  snapshot_clear(&d);
  /* Every strict prefix of a valid object is rejected. */
  size_t len = strlen(t);
  int bad = 0;
  for (size_t i = 0; i < len; i++)
    if (snapshot_decode(t, i, &d) == 0) {
      bad++;
      snapshot_clear(&d);
    }
  check_int(bad, ==, 0);
  /* A page count that does not match the size is rejected. */
  s.size = 5000000;
  char *t2 = snapshot_encode(&s);
  check_int(snapshot_decode(t2, strlen(t2), &d), ==, -1);
  free(t2);
  free(t);
  free(p1);
  free(p2);
  vec_free(&s.pages);
}

static int seen_packs, seen_entries;
static int on_pack(void *o PL_UNUSED, uint32_t ord PL_UNUSED, const uint8_t h[HASH_LEN] PL_UNUSED)
{
  seen_packs++;
  return 0;
}
static int on_entry(void *o PL_UNUSED, uint32_t ord, const struct chunk_entry *e)
{
  seen_entries += e->raw_len == 100 && ord == 1;
  return 0;
}

static void test_pack_and_index(void)
{
  struct chunk_entry e[3];
  memset(e, 0, sizeof e);
  for (int i = 0; i < 3; i++) {
    e[i].hash[0] = (uint8_t)i;
    e[i].type = CHUNK_DATA;
    e[i].comp = COMP_ZSTD;
    e[i].stored_len = 10;
    e[i].raw_len = 100;
    e[i].offset = PACK_HEADER_LEN + 10u * i;
  }
  uint8_t *t, th[HASH_LEN];
  size_t tlen;
  uint32_t count;
  struct chunk_entry *out;
  int sealed;
  check_int(pack_trailer_encode(e, 3, NULL, &t, &tlen), ==, 0);
  check_int(tlen, ==, 3 * PACK_ENTRY_LEN + PACK_FOOTER_LEN);
  check_int(pack_footer_decode(t + tlen - PACK_FOOTER_LEN, &count, th, &sealed), ==, 0);
  check_int(count, ==, 3);
  check_int(sealed, ==, 0);
  check_int(pack_entries_decode(t, count, th, 0, PACK_HEADER_LEN + 30, &out), ==, 0);
  check_int(out[2].offset, ==, PACK_HEADER_LEN + 20);
  free(out);
  /* Wrong data end, damaged entries */
  check_int(pack_entries_decode(t, count, th, 0, PACK_HEADER_LEN + 31, &out), ==, -1);
  t[5] ^= 1;
  check_int(pack_entries_decode(t, count, th, 0, PACK_HEADER_LEN + 30, &out), ==, -1);
  free(t);
  /* Sealed: the entries are opened with the key, and a flipped bit fails. */
  struct repo_keys k;
  uint8_t plain[3 * PACK_ENTRY_LEN];
  memset(&k, 9, sizeof k);
  check_int(pack_trailer_encode(e, 3, &k, &t, &tlen), ==, 0);
  check_int(tlen, ==, 3 * PACK_ENTRY_LEN + SEAL_OVERHEAD + PACK_FOOTER_LEN);
  check_int(pack_footer_decode(t + tlen - PACK_FOOTER_LEN, &count, th, &sealed), ==, 0);
  check_int(sealed, ==, 1);
  check_int(pack_trailer_unseal(&k, t, count, plain), ==, 0);
  check_int(pack_entries_decode(plain, count, NULL, 0, PACK_HEADER_LEN + 30, &out), ==, 0);
  free(out);
  t[20] ^= 1;
  check_int(pack_trailer_unseal(&k, t, count, plain), ==, -1);
  free(t);

  uint8_t packs[2][HASH_LEN] = {{1}, {2}};
  uint32_t pack_of[3] = {0, 1, 1};
  uint8_t *ix;
  size_t ixlen;
  check_int(index_encode((const uint8_t(*)[HASH_LEN])packs, 2, e, pack_of, 3, &ix, &ixlen), ==, 0);
  struct index_visitor v = {on_pack, on_entry, NULL};
  check_int(index_decode(ix, ixlen, 0, &v), ==, 0);
  check_int(seen_packs, ==, 2);
  check_int(seen_entries, ==, 2);
  check_int(index_decode(ix, ixlen - 1, 0, &v), ==, -1);
  ix[ixlen - 1] = 9; /* pack ordinal out of range */
  check_int(index_decode(ix, ixlen, 0, &v), ==, -1);
  free(ix);
}

static void test_hash(void)
{
  uint8_t h[HASH_LEN], back[HASH_LEN];
  char hex[2 * HASH_LEN + 1];
  sha256("abc", 3, h);
  hex_encode(h, HASH_LEN, hex);
  check_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  check_int(hex_decode(hex, back, HASH_LEN), ==, 0);
  check(memcmp(h, back, HASH_LEN) == 0);
  check_int(hex_decode("zz", back, 1), ==, -1);
  check_int(hex_decode("0A", back, 1), ==, 0);
  check_int(back[0], ==, 10);
  check_int(hex_decode("Ff", back, 1), ==, 0);
  check_int(back[0], ==, 255);
  check_int(hex_decode("a", back, 1), ==, -1); /* stops at the NUL */
  check_int(hex_decode("0g", back, 1), ==, -1);
  check_int(hex_decode("/0", back, 1), ==, -1);
  static uint8_t z[100000];
  check(is_zero(z, sizeof z));
  z[99999] = 1;
  check(!is_zero(z, sizeof z));
  check(is_zero(z, 5));
}

/* CBT disks: 64 KiB blocks up to 256 GiB, then doubling to keep the block
 * map at most CBT_MAX_BLOCKS entries, never past the general default. */
static void test_cbt_block_size(void)
{
  const uint64_t gib = 1ull << 30;
  check_int(repo_cbt_block_size(0), ==, 64 << 10);
  check_int(repo_cbt_block_size(8 * gib), ==, 64 << 10);
  check_int(repo_cbt_block_size(256 * gib), ==, 64 << 10);
  check_int(repo_cbt_block_size(256 * gib + 1), ==, 128 << 10);
  check_int(repo_cbt_block_size(1024 * gib), ==, 256 << 10);
  check_int(repo_cbt_block_size(2048 * gib), ==, 512 << 10);
  check_int(repo_cbt_block_size(64 * 1024 * gib), ==, DEFAULT_BLOCK_SIZE);
}

/* Damage records: canonical (sorted, deduplicated) and strict on fields. */
static void test_damage(void)
{
  struct damage d = {0}, e;
  struct damage_pack p = {.kind = DAMAGE_TRAILER};
  struct damage_chunk c;
  struct damage_name n;
  memset(p.pack, 0xbb, HASH_LEN);
  memset(c.chunk, 0x11, HASH_LEN);
  memset(c.pack, 0xbb, HASH_LEN);
  memset(n.h, 0x22, HASH_LEN);
  check(vec_push(&d.packs, p) == 0 && vec_push(&d.chunks, c) == 0);
  p.kind = DAMAGE_MISSING;
  memset(p.pack, 0xaa, HASH_LEN);
  check(vec_push(&d.packs, p) == 0 && vec_push(&d.chunks, c) == 0);
  check(vec_push(&d.snapshots, n) == 0 && vec_push(&d.index, n) == 0);
  char *t = damage_encode(&d);
  check(t != NULL);
  check_int(d.packs.len, ==, 2);
  check_int(d.chunks.len, ==, 1); /* the duplicate is dropped */
  check(strncmp(t, "pilotlight-damage=1\npack=aaaa", 29) == 0);
  check(strstr(t, " missing\npack=bbbb") != NULL && strstr(t, " trailer\nchunk=1111") != NULL);
  check_int(damage_decode(t, strlen(t), &e), ==, 0);
  check_int(e.packs.len, ==, 2);
  check_int(e.packs.v[0].kind, ==, DAMAGE_MISSING);
  check(memcmp(e.chunks.v[0].pack, c.pack, HASH_LEN) == 0);
  check_int(e.index.len, ==, 1);
  check_int(e.snapshots.len, ==, 1);
  damage_clear(&e);
  t[strlen(t) - 2] = 'x'; /* "end=x" */
  check_int(damage_decode(t, strlen(t), &e), ==, -1);
  damage_clear(&e);
  const char *upper = "pilotlight-damage=1\nindex="
                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nend=\n";
  check_int(damage_decode(upper, strlen(upper), &e), ==, -1);
  damage_clear(&e);
  free(t);
  damage_clear(&d);
}

int main(void)
{
  test_config();
  test_snapshot();
  test_pack_and_index();
  test_hash();
  test_cbt_block_size();
  test_damage();
  return check_summary();
}
