/* Repository object encoders and decoders. The byte layouts are specified
 * in docs/FORMAT.md; keep the two in step. */
#include "format.h"

#include "lock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error.h"
#include "../util/hash.h"
#include "../util/strbuf.h"

#include <openssl/crypto.h>

/* ---- text objects ---------------------------------------------------- */

/* Append value percent-encoded: bytes outside '!'..'~' and '%' become %XX.
 * Failures stick in b and are reported by strbuf_take. */
static void append_encoded(struct strbuf *b, const char *v)
{
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p <= ' ' || *p >= 0x7f || *p == '%')
      strbuf_appendf(b, "%%%02X", *p);
    else
      strbuf_append(b, p, 1);
  }
}

/* Decode a percent-encoded value of n bytes into a new string. */
static char *decode_value(const char *v, size_t n)
{
  char *out = malloc(n + 1);
  size_t o = 0;
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    uint8_t byte;
    if (v[i] == '%') {
      if (i + 2 >= n) {
        free(out);
        return NULL;
      }
      if (hex_decode(v + i + 1, &byte, 1) == -1 || byte == 0) {
        free(out);
        return NULL;
      }
      out[o++] = (char)byte;
      i += 2;
    } else {
      out[o++] = v[i];
    }
  }
  out[o] = 0;
  return out;
}

static int parse_u64(const char *v, size_t n, uint64_t *out)
{
  uint64_t x = 0;
  if (n == 0 || n > 20)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9')
      return -1;
    unsigned d = (unsigned)(v[i] - '0');
    if (x > (UINT64_MAX - d) / 10)
      return -1;
    x = x * 10 + d;
  }
  *out = x;
  return 0;
}

/* Iterate "key=value\n" lines. Returns 1 with key/value set, 0 at the end,
 * -1 on a malformed line. */
struct lines {
  const char *p, *end;
  unsigned long lineno;
};

static int next_line(struct lines *l, const char **key, size_t *klen, const char **val,
                     size_t *vlen)
{
  if (l->p >= l->end)
    return 0;
  const char *nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
  if (!nl)
    return -1; /* every line ends with \n */
  const char *eq = memchr(l->p, '=', (size_t)(nl - l->p));
  l->lineno++;
  if (!eq)
    return -1;
  *key = l->p;
  *klen = (size_t)(eq - l->p);
  *val = eq + 1;
  *vlen = (size_t)(nl - eq - 1);
  l->p = nl + 1;
  return 1;
}

static int key_is(const char *k, size_t klen, const char *want)
{
  return strlen(want) == klen && memcmp(k, want, klen) == 0;
}

char *config_encode(const struct repo_config *c, const struct repo_keys *k)
{
  struct strbuf b = STRBUF_INIT(MAX_CONFIG_BYTES, "repository config");
  uint8_t h[HASH_LEN];
  char hex[2 * HASH_LEN + 1];
  if (k)
    strbuf_appendf(&b,
                   "pilotlight-repository=2\nid=%s\nchunk-hash=hmac-sha256\ncompression=zstd\n"
                   "encryption=aes-256-gcm\nkey-derivation=scrypt\npage-entries=%" PRIu32 "\n",
                   c->id, c->page_entries);
  else
    strbuf_appendf(&b,
                   "pilotlight-repository=1\nid=%s\nchunk-hash=sha256\ncompression=zstd\n"
                   "encryption=none\npage-entries=%" PRIu32 "\n",
                   c->id, c->page_entries);
  if (c->lock_days)
    strbuf_appendf(&b, "object-lock-days=%" PRIu32 "\nobject-lock-mode=%s\n", c->lock_days,
                   c->lock_mode == LOCK_MODE_COMPLIANCE ? "compliance" : "governance");
  /* The last line authenticates (version 2) or checksums (version 1) all
   * the lines before it. A failed append is reported by strbuf_take. */
  if (!b.err) {
    if (k)
      config_mac(k, b.buf, b.len, h);
    else
      sha256(b.buf, b.len, h);
    hex_encode(h, HASH_LEN, hex);
    strbuf_appendf(&b, "%s=%s\n", k ? "config-mac" : "config-sha256", hex);
  }
  return strbuf_take(&b, NULL);
}

/* The value a version requires for an algorithm line. */
static int algorithm_ok(unsigned version, const char *k, size_t kl, const char *v, size_t vl)
{
  static const struct {
    unsigned version;
    const char *key, *value;
  } known[] = {
      {1, "chunk-hash", "sha256"},     {1, "compression", "zstd"},
      {1, "encryption", "none"},       {2, "chunk-hash", "hmac-sha256"},
      {2, "compression", "zstd"},      {2, "encryption", "aes-256-gcm"},
      {2, "key-derivation", "scrypt"},
  };
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (known[i].version == version && key_is(k, kl, known[i].key))
      return strlen(known[i].value) == vl && memcmp(v, known[i].value, vl) == 0;
  return 0;
}

int config_decode(const char *buf, size_t len, struct repo_config *c)
{
  struct lines l = {buf, buf + len, 0};
  const char *k, *v;
  size_t kl, vl;
  int r;
  /* Each required line, seen once: id, page-entries, chunk-hash,
   * compression, encryption, key-derivation (version 2 only). */
  static const char *const required[] = {"id",          "page-entries", "chunk-hash",
                                         "compression", "encryption",   "key-derivation"};
  unsigned seen = 0, need;
  uint64_t x;
  memset(c, 0, sizeof *c);
  r = next_line(&l, &k, &kl, &v, &vl);
  if (r != 1 || !key_is(k, kl, "pilotlight-repository") || parse_u64(v, vl, &x) == -1 || x == 0 ||
      x > 1000000) {
    set_error_code(EINVAL, "not a pilotlight repository config");
    return -1;
  }
  c->version = (unsigned)x;
  if (c->version > REPO_FORMAT_VERSION) {
    set_error_code(ENOTSUP,
                   "repository format version %u is newer than this pilotlight supports (%u): "
                   "upgrade pilotlight",
                   c->version, REPO_FORMAT_VERSION);
    return -1;
  }
  c->encrypted = c->version >= 2;
  need = c->encrypted ? 0x3f : 0x1f;
  for (;;) {
    const char *start = l.p;
    r = next_line(&l, &k, &kl, &v, &vl);
    if (r != 1)
      break;
    unsigned bit = 0;
    for (unsigned i = 0; i < sizeof required / sizeof required[0]; i++)
      if (key_is(k, kl, required[i]))
        bit = 1u << i;
    if (bit & seen)
      goto bad; /* a line given twice */
    seen |= bit;
    if (key_is(k, kl, "id")) {
      uint8_t raw[16];
      if (vl != 32 || hex_decode(v, raw, 16) == -1)
        goto bad;
      memcpy(c->id, v, 32);
      c->id[32] = 0;
    } else if (key_is(k, kl, "page-entries")) {
      if (parse_u64(v, vl, &x) == -1 || x == 0 || x > MAX_PAGE_ENTRIES)
        goto bad;
      c->page_entries = (uint32_t)x;
    } else if (bit) {
      if (!algorithm_ok(c->version, k, kl, v, vl))
        goto unsupported;
    } else if (key_is(k, kl, "object-lock-days")) {
      if (c->lock_days || parse_u64(v, vl, &x) == -1 || x == 0 || x > MAX_LOCK_DAYS)
        goto bad;
      c->lock_days = (uint32_t)x;
    } else if (key_is(k, kl, "object-lock-mode")) {
      if (c->lock_mode)
        goto bad;
      if (key_is(v, vl, "governance"))
        c->lock_mode = LOCK_MODE_GOVERNANCE;
      else if (key_is(v, vl, "compliance"))
        c->lock_mode = LOCK_MODE_COMPLIANCE;
      else
        goto unsupported;
    } else if (key_is(k, kl, c->encrypted ? "config-mac" : "config-sha256")) {
      /* The last line: it covers every byte before it. */
      if (vl != 2 * HASH_LEN || hex_decode(v, c->check, HASH_LEN) == -1 || l.p != l.end)
        goto bad;
      c->checked_len = (size_t)(start - buf);
      c->has_check = 1;
    }
    /* Unknown keys are ignored: minor additions keep the version. */
  }
  if (r == -1)
    goto bad;
  if ((seen & need) != need) {
    for (unsigned i = 0; i < 6; i++)
      if ((need & ~seen) & (1u << i)) {
        set_error_code(EINVAL, "repository config has no %s= line (damaged or altered config)",
                       required[i]);
        return -1;
      }
  }
  if (!c->lock_days != !c->lock_mode) {
    set_error_code(EINVAL,
                   "repository config has object-lock-%s= without object-lock-%s= "
                   "(damaged or altered config)",
                   c->lock_days ? "days" : "mode", c->lock_days ? "mode" : "days");
    return -1;
  }
  /* Version 2 is always authenticated; a version-1 checksum was added
   * later, so an old config without one is accepted. */
  if (c->encrypted && !c->has_check) {
    set_error_code(EINVAL, "repository config has no config-mac= line (damaged or altered "
                           "config)");
    return -1;
  }
  if (!c->encrypted && c->has_check) {
    uint8_t h[HASH_LEN];
    sha256(buf, c->checked_len, h);
    if (memcmp(h, c->check, HASH_LEN) != 0) {
      set_error_code(EINVAL, "repository config does not match its config-sha256= line "
                             "(damaged or altered config)");
      return -1;
    }
  }
  return 0;
unsupported:
  set_error_code(ENOTSUP,
                 "repository config line %lu: \"%.*s=%.*s\" is not supported by this "
                 "pilotlight: upgrade pilotlight",
                 l.lineno, (int)kl, k, (int)(vl > 40 ? 40 : vl), v);
  return -1;
bad:
  set_error_code(EINVAL, "repository config is malformed (line %lu)", l.lineno);
  return -1;
}

int config_check_mac(const struct repo_config *c, const char *buf, const struct repo_keys *k)
{
  uint8_t h[HASH_LEN];
  config_mac(k, buf, c->checked_len, h);
  if (CRYPTO_memcmp(h, c->check, HASH_LEN) != 0) {
    set_error_code(EINVAL, "repository config does not match its config-mac= line (damaged or "
                           "altered config)");
    return -1;
  }
  return 0;
}

/* ---- key objects ------------------------------------------------------ */

char *key_object_encode(const struct key_object *o)
{
  /* Only what key_object_decode accepts, so every key object written reads
   * back. */
  if (o->created < 0) {
    set_error_code(EINVAL, "key object's creation time is before 1970 (%" PRId64 ")", o->created);
    return NULL;
  }
  if (scrypt_params_check(o->n, o->r, o->p) == -1)
    return NULL;
  struct strbuf b = STRBUF_INIT(MAX_KEY_OBJECT_BYTES, "key object");
  char salt[2 * sizeof o->salt + 1], wrapped[2 * sizeof o->wrapped + 1];
  hex_encode(o->salt, sizeof o->salt, salt);
  hex_encode(o->wrapped, sizeof o->wrapped, wrapped);
  strbuf_appendf(&b,
                 "pilotlight-key=1\nkdf=scrypt\nscrypt-n=%" PRIu64 "\nscrypt-r=%" PRIu32
                 "\nscrypt-p=%" PRIu32 "\nsalt=%s\ncreated=%" PRId64 "\nwrapped=%s\n",
                 o->n, o->r, o->p, salt, o->created, wrapped);
  return strbuf_take(&b, NULL);
}

/* A decimal integer as the encoder writes it: digits only and no leading
 * zero (but "0" itself), so that each value has one spelling. */
static int parse_canonical_u64(const char *v, size_t n, uint64_t *out)
{
  if (n > 1 && v[0] == '0')
    return -1;
  return parse_u64(v, n, out);
}

/* Decode exactly 2 * len lower-case hex digits (as hex_encode writes them)
 * into out. Returns 1 if v (n bytes) is that, else 0. */
static int parse_lower_hex(const char *v, size_t n, uint8_t *out, size_t len)
{
  if (n != 2 * len)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((v[i] < '0' || v[i] > '9') && (v[i] < 'a' || v[i] > 'f'))
      return 0;
  return hex_decode(v, out, len) == 0;
}

int key_object_decode(const char *buf, size_t len, struct key_object *o)
{
  /* Every line, in this order, once, spelt as key_object_encode spells it:
   * whatever decodes encodes back to the same bytes. */
  static const char *const keys[] = {"pilotlight-key", "kdf",  "scrypt-n", "scrypt-r",
                                     "scrypt-p",       "salt", "created",  "wrapped"};
  struct lines l = {buf, buf + len, 0};
  const char *k, *v;
  size_t kl, vl;
  uint64_t num[8] = {0}; /* scrypt-n, -r, -p and created, by line */
  memset(o, 0, sizeof *o);
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    if (next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, keys[i]))
      goto bad;
    int ok;
    switch (i) {
    case 0:
      ok = vl == 1 && v[0] == '1';
      break;
    case 1:
      ok = vl == 6 && memcmp(v, "scrypt", 6) == 0;
      break;
    case 5:
      ok = parse_lower_hex(v, vl, o->salt, sizeof o->salt);
      break;
    case 7:
      ok = parse_lower_hex(v, vl, o->wrapped, sizeof o->wrapped);
      break;
    default:
      /* The bounds of n, r and p are checked together, below. */
      ok = parse_canonical_u64(v, vl, &num[i]) == 0 && (i != 6 || num[i] <= INT64_MAX);
    }
    if (!ok)
      goto bad;
  }
  if (l.p != l.end)
    goto bad;
  if (scrypt_params_check(num[2], num[3], num[4]) == -1)
    return -1;
  o->n = num[2];
  o->r = (uint32_t)num[3];
  o->p = (uint32_t)num[4];
  o->created = (int64_t)num[6];
  return 0;
bad:
  set_error_code(EINVAL, "key object is malformed (line %lu)", l.lineno);
  return -1;
}

char *snapshot_encode(const struct snapshot *s)
{
  struct strbuf b = STRBUF_INIT(MAX_SNAPSHOT_BYTES, "snapshot object");
  char hex[2 * HASH_LEN + 1];
  strbuf_appends(&b, "pilotlight-snapshot=1\ndisk=");
  append_encoded(&b, s->disk);
  strbuf_appendf(&b,
                 "\nsize=%" PRIu64 "\nblock-size=%" PRIu32 "\ntime=%" PRId64 "\ntime-ns=%" PRIu32
                 "\nparent=%s\nsource=",
                 s->size, s->block_size, s->time, s->time_ns, s->parent[0] ? s->parent : "-");
  append_encoded(&b, s->source ? s->source : "");
  strbuf_appends(&b, "\ncbt=");
  append_encoded(&b, s->cbt ? s->cbt : "");
  strbuf_appends(&b, "\nhost=");
  append_encoded(&b, s->host ? s->host : "");
  strbuf_appends(&b, "\nmode=");
  append_encoded(&b, s->mode ? s->mode : "");
  strbuf_appends(&b, "\nnote=");
  append_encoded(&b, s->note ? s->note : "");
  strbuf_appendf(&b,
                 "\nbytes-read=%" PRIu64 "\nbytes-new=%" PRIu64 "\nbytes-stored=%" PRIu64
                 "\nused-end=%" PRIu64 "\npage-entries=%" PRIu32 "\npages=%zu\n",
                 s->bytes_read, s->bytes_new, s->bytes_stored, s->used_end, s->page_entries,
                 s->pages.len);
  for (size_t i = 0; i < s->pages.len; i++) {
    hex_encode(s->pages.v[i], HASH_LEN, hex);
    strbuf_appendf(&b, "page=%s\n", hex);
  }
  strbuf_appends(&b, "end=\n");
  return strbuf_take(&b, NULL);
}

/* Fields of a snapshot object, in the order they must appear. */
enum {
  F_DISK,
  F_SIZE,
  F_BS,
  F_TIME,
  F_TIMENS,
  F_PARENT,
  F_SOURCE,
  F_CBT,
  F_HOST,
  F_MODE,
  F_NOTE,
  F_READ,
  F_NEW,
  F_STORED,
  F_USED,
  F_PE,
  F_PAGES,
  F_COUNT
};
static const char *const snapshot_keys[F_COUNT] = {
    "disk",      "size",         "block-size", "time",         "time-ns", "parent",
    "source",    "cbt",          "host",       "mode",         "note",    "bytes-read",
    "bytes-new", "bytes-stored", "used-end",   "page-entries", "pages",
};

/* The numeric field f (one of snapshot_keys) of a snapshot, checked. */
static int decode_number(struct snapshot *s, int f, uint64_t x, uint64_t *npages)
{
  switch (f) {
  case F_SIZE:
    s->size = x;
    break;
  case F_BS:
    if (x < MIN_BLOCK_SIZE || x > MAX_BLOCK_SIZE || (x & (x - 1)))
      return -1;
    s->block_size = (uint32_t)x;
    break;
  case F_TIME:
    if (x > INT64_MAX)
      return -1;
    s->time = (int64_t)x;
    break;
  case F_TIMENS:
    if (x >= 1000000000)
      return -1;
    s->time_ns = (uint32_t)x;
    break;
  case F_READ:
    s->bytes_read = x;
    break;
  case F_NEW:
    s->bytes_new = x;
    break;
  case F_STORED:
    s->bytes_stored = x;
    break;
  case F_USED:
    s->used_end = x;
    break;
  case F_PE:
    if (x == 0 || x > MAX_PAGE_ENTRIES)
      return -1;
    s->page_entries = (uint32_t)x;
    break;
  case F_PAGES:
    *npages = x;
    break;
  }
  return 0;
}

/* Field f of a snapshot from its value v (vl bytes, untrusted). */
static int decode_field(struct snapshot *s, int f, const char *v, size_t vl, uint64_t *npages)
{
  char **str = NULL;
  uint64_t x;
  switch (f) {
  case F_DISK:
    str = &s->disk;
    break;
  case F_SOURCE:
    str = &s->source;
    break;
  case F_CBT:
    str = &s->cbt;
    break;
  case F_HOST:
    str = &s->host;
    break;
  case F_MODE:
    str = &s->mode;
    break;
  case F_NOTE:
    str = &s->note;
    break;
  case F_PARENT:
    if (vl == 1 && v[0] == '-') {
      s->parent[0] = 0;
    } else {
      uint8_t raw[HASH_LEN];
      if (vl != 2 * HASH_LEN || hex_decode(v, raw, HASH_LEN) == -1)
        return -1;
      hex_encode(raw, HASH_LEN, s->parent);
    }
    return 0;
  default:
    if (parse_u64(v, vl, &x) == -1)
      return -1;
    return decode_number(s, f, x, npages);
  }
  *str = decode_value(v, vl);
  return *str ? 0 : -1;
}

int snapshot_decode(const char *buf, size_t len, struct snapshot *s)
{
  struct lines l = {buf, buf + len, 0};
  const char *k, *v;
  size_t kl, vl;
  uint64_t npages = 0;
  memset(s, 0, sizeof *s);
  if (next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, "pilotlight-snapshot") || vl != 1 ||
      v[0] != '1') {
    set_error_code(EINVAL,
                   "not a pilotlight snapshot (or a newer snapshot version: upgrade pilotlight)");
    return -1;
  }
  for (int f = 0; f < F_COUNT; f++) {
    if (next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, snapshot_keys[f]) ||
        decode_field(s, f, v, vl, &npages) == -1)
      goto bad;
  }
  if (s->disk[0] == 0 || s->used_end > s->size)
    goto bad;
  {
    uint64_t nblocks = s->size / s->block_size + (s->size % s->block_size != 0);
    uint64_t want = nblocks / s->page_entries + (nblocks % s->page_entries != 0);
    if (npages != want)
      goto bad;
  }
  for (uint64_t i = 0; i < npages; i++) {
    uint8_t *h;
    if (next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, "page") || vl != 2 * HASH_LEN)
      goto bad;
    h = malloc(HASH_LEN);
    if (!h || vec_push(&s->pages, h) == -1) {
      free(h);
      goto bad;
    }
    if (hex_decode(v, h, HASH_LEN) == -1)
      goto bad;
  }
  if (next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, "end") || vl != 0 || l.p != l.end)
    goto bad;
  return 0;
bad:
  set_error_code(EINVAL, "snapshot object is malformed at line %lu", l.lineno);
  snapshot_clear(s);
  return -1;
}

void snapshot_clear(struct snapshot *s)
{
  free(s->disk);
  free(s->source);
  free(s->cbt);
  free(s->host);
  free(s->mode);
  free(s->note);
  for (size_t i = 0; i < s->pages.len; i++)
    free(s->pages.v[i]);
  vec_free(&s->pages);
  memset(s, 0, sizeof *s);
}

void snapshot_free(struct snapshot *s)
{
  if (s) {
    snapshot_clear(s);
    free(s);
  }
}

/* ---- forget records -------------------------------------------------- */

char *forget_record_encode(const struct forget_record *rec)
{
  struct strbuf b = STRBUF_INIT(MAX_FORGET_RECORD_BYTES, "forget record");
  strbuf_appendf(&b, "pilotlight-forgotten=1\ntime=%" PRId64 "\nhost=", rec->time);
  append_encoded(&b, rec->host ? rec->host : "");
  strbuf_appendf(&b, "\nsnapshots=%zu\n", rec->e.len);
  for (size_t i = 0; i < rec->e.len; i++) {
    strbuf_appendf(&b, "snapshot=%s ", rec->e.v[i].id);
    append_encoded(&b, rec->e.v[i].disk);
    strbuf_appendf(&b, " %" PRId64 "\n", rec->e.v[i].time);
  }
  strbuf_appends(&b, "end=\n");
  return strbuf_take(&b, NULL);
}

/* 1 if v (n bytes) is as append_encoded writes: only '!'..'~'. */
static int is_encoded(const char *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (v[i] <= ' ' || v[i] >= 0x7f)
      return 0;
  return 1;
}

/* One "snapshot=ID DISK TIME" value (vl bytes, untrusted) into e. */
static int decode_record_entry(const char *v, size_t vl, struct forget_record_entry *e)
{
  uint8_t raw[HASH_LEN];
  uint64_t t;
  const char *disk, *sp;
  if (vl < 2 * HASH_LEN + 4 || v[2 * HASH_LEN] != ' ' || hex_decode(v, raw, HASH_LEN) == -1)
    return -1;
  disk = v + 2 * HASH_LEN + 1;
  sp = memchr(disk, ' ', vl - (size_t)(disk - v));
  if (!sp || sp == disk || !is_encoded(disk, (size_t)(sp - disk)) ||
      parse_u64(sp + 1, vl - (size_t)(sp + 1 - v), &t) == -1 || t > INT64_MAX)
    return -1;
  hex_encode(raw, HASH_LEN, e->id);
  e->time = (int64_t)t;
  e->disk = decode_value(disk, (size_t)(sp - disk));
  return e->disk ? 0 : -1;
}

int forget_record_decode(const char *buf, size_t len, struct forget_record *rec)
{
  struct lines l = {buf, buf + len, 0};
  const char *k, *v;
  size_t kl, vl;
  uint64_t x, n;
  memset(rec, 0, sizeof *rec);
  if (next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, "pilotlight-forgotten") || vl != 1 ||
      v[0] != '1') {
    set_error_code(EINVAL,
                   "not a pilotlight forget record (or a newer version: upgrade pilotlight)");
    return -1;
  }
  if (next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, "time") ||
      parse_u64(v, vl, &x) == -1 || x > INT64_MAX)
    goto bad;
  rec->time = (int64_t)x;
  if (next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, "host") || !is_encoded(v, vl))
    goto bad;
  rec->host = decode_value(v, vl);
  if (!rec->host || next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, "snapshots") ||
      parse_u64(v, vl, &n) == -1 || n > len / (2 * HASH_LEN))
    goto bad;
  for (uint64_t i = 0; i < n; i++) {
    struct forget_record_entry e = {0};
    if (next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, "snapshot") ||
        decode_record_entry(v, vl, &e) == -1 || vec_push(&rec->e, e) == -1) {
      free(e.disk);
      goto bad;
    }
  }
  if (next_line(&l, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, "end") || vl != 0 || l.p != l.end)
    goto bad;
  return 0;
bad:
  set_error_code(EINVAL, "forget record is malformed at line %lu", l.lineno);
  forget_record_clear(rec);
  return -1;
}

void forget_record_clear(struct forget_record *rec)
{
  free(rec->host);
  for (size_t i = 0; i < rec->e.len; i++)
    free(rec->e.v[i].disk);
  vec_free(&rec->e);
  memset(rec, 0, sizeof *rec);
}

/* ---- pack trailers --------------------------------------------------- */

static void entry_put(uint8_t *p, const struct chunk_entry *e)
{
  memcpy(p, e->hash, HASH_LEN);
  p[HASH_LEN] = e->type;
  p[33] = e->comp;
  p[34] = p[35] = 0;
  put_u32(p + 36, e->stored_len);
  put_u32(p + 40, e->raw_len);
  put_u64(p + 44, e->offset);
}

static int entry_get(const uint8_t *p, uint32_t overhead, struct chunk_entry *e)
{
  memcpy(e->hash, p, HASH_LEN);
  e->type = p[HASH_LEN];
  e->comp = p[33];
  e->stored_len = get_u32(p + 36);
  e->raw_len = get_u32(p + 40);
  e->offset = get_u64(p + 44);
  if (e->type > CHUNK_PAGE || e->comp > COMP_ZSTD || p[34] || p[35] || e->raw_len == 0 ||
      e->raw_len > MAX_BLOCK_SIZE || e->stored_len == 0 || e->stored_len <= overhead ||
      (e->comp == COMP_NONE && e->stored_len != e->raw_len + overhead) ||
      e->stored_len > MAX_BLOCK_SIZE + (MAX_BLOCK_SIZE >> 7) + 1024 + overhead)
    return -1;
  return 0;
}

#define TRAILER_AAD "pilotlight pack trailer"

int pack_trailer_encode(const struct chunk_entry *e, size_t n, const struct repo_keys *k,
                        uint8_t **out, size_t *outlen)
{
  if (n > (UINT32_MAX - SEAL_OVERHEAD) / PACK_ENTRY_LEN) {
    set_error_code(EFBIG, "too many chunks in one pack");
    return -1;
  }
  size_t elen = n * PACK_ENTRY_LEN, tlen = elen + (k ? SEAL_OVERHEAD : 0);
  uint8_t *p = calloc(1, tlen + PACK_FOOTER_LEN), *plain = k ? malloc(elen ? elen : 1) : p;
  if (!p || !plain) {
    set_error(errno, "malloc");
    goto fail;
  }
  for (size_t i = 0; i < n; i++)
    entry_put(plain + i * PACK_ENTRY_LEN, &e[i]);
  if (k) {
    if (seal(k, TRAILER_AAD, sizeof TRAILER_AAD - 1, plain, elen, p) == -1)
      goto fail;
    free(plain);
  }
  uint8_t *f = p + tlen;
  put_u32(f, (uint32_t)n);
  sha256(p, tlen, f + 4);
  memcpy(f + 36, k ? "PLTRAIL2" : "PLTRAIL1", 8);
  *out = p;
  *outlen = tlen + PACK_FOOTER_LEN;
  return 0;
fail:
  if (plain != p)
    free(plain);
  free(p);
  return -1;
}

int pack_footer_decode(const uint8_t *footer, uint32_t *count, uint8_t hash[HASH_LEN], int *sealed)
{
  if (memcmp(footer + 36, "PLTRAIL1", 8) == 0) {
    *sealed = 0;
  } else if (memcmp(footer + 36, "PLTRAIL2", 8) == 0) {
    *sealed = 1;
  } else {
    set_error_code(EINVAL, "pack trailer magic is missing (truncated or not a pack)");
    return -1;
  }
  *count = get_u32(footer);
  if (*count > (UINT32_MAX - SEAL_OVERHEAD) / PACK_ENTRY_LEN) {
    set_error_code(EINVAL, "pack trailer count is implausible");
    return -1;
  }
  memcpy(hash, footer + 4, HASH_LEN);
  return 0;
}

int pack_matches_name(const uint8_t *buf, size_t len, const uint8_t name[HASH_LEN])
{
  uint8_t th[HASH_LEN], h[HASH_LEN];
  uint32_t n;
  int sealed;
  if (len < PACK_HEADER_LEN + PACK_FOOTER_LEN ||
      pack_footer_decode(buf + len - PACK_FOOTER_LEN, &n, th, &sealed) == -1)
    return 0;
  uint64_t tail = (uint64_t)n * PACK_ENTRY_LEN + (sealed ? SEAL_OVERHEAD : 0) + PACK_FOOTER_LEN;
  if (tail > len - PACK_HEADER_LEN)
    return 0;
  sha256(buf + len - tail, (size_t)tail, h);
  return memcmp(h, name, HASH_LEN) == 0;
}

int pack_trailer_unseal(const struct repo_keys *k, const uint8_t *buf, uint32_t count, uint8_t *out)
{
  size_t elen = (size_t)count * PACK_ENTRY_LEN;
  if (unseal(k, TRAILER_AAD, sizeof TRAILER_AAD - 1, buf, elen + SEAL_OVERHEAD, out) == -1) {
    set_error_code(EINVAL, "pack trailer failed authentication (damaged or altered pack)");
    return -1;
  }
  return 0;
}

int pack_entries_decode(const uint8_t *buf, uint32_t count, const uint8_t *hash, uint32_t overhead,
                        uint64_t data_end, struct chunk_entry **out)
{
  uint8_t h[HASH_LEN];
  struct chunk_entry *e = NULL;
  uint64_t next = PACK_HEADER_LEN;
  if (hash) {
    sha256(buf, (size_t)count * PACK_ENTRY_LEN, h);
    if (memcmp(h, hash, HASH_LEN) != 0) {
      set_error_code(EINVAL, "pack trailer checksum mismatch");
      return -1;
    }
  }
  e = calloc(count ? count : 1, sizeof *e);
  if (!e) {
    set_error(errno, "calloc");
    return -1;
  }
  for (uint32_t i = 0; i < count; i++) {
    if (entry_get(buf + (size_t)i * PACK_ENTRY_LEN, overhead, &e[i]) == -1 || e[i].offset != next ||
        e[i].stored_len > data_end - next) {
      set_error_code(EINVAL, "pack trailer entry %u is invalid", i);
      free(e);
      return -1;
    }
    next += e[i].stored_len;
  }
  if (next != data_end) {
    set_error_code(EINVAL, "pack trailer does not cover the pack's data");
    free(e);
    return -1;
  }
  *out = e;
  return 0;
}

/* ---- index objects --------------------------------------------------- */

int index_encode(const uint8_t (*packs)[HASH_LEN], uint32_t npacks, const struct chunk_entry *e,
                 const uint32_t *pack_of, size_t n, uint8_t **out, size_t *outlen)
{
  if (n > UINT32_MAX || npacks > UINT32_MAX / HASH_LEN) {
    set_error_code(EFBIG, "index too large");
    return -1;
  }
  size_t len = 8 + 4 + (size_t)npacks * HASH_LEN + 4 + n * INDEX_ENTRY_LEN;
  uint8_t *p = malloc(len), *q;
  if (!p) {
    set_error(errno, "malloc");
    return -1;
  }
  memcpy(p, INDEX_MAGIC, 8);
  put_u32(p + 8, npacks);
  q = p + 12;
  for (uint32_t i = 0; i < npacks; i++, q += HASH_LEN)
    memcpy(q, packs[i], HASH_LEN);
  put_u32(q, (uint32_t)n);
  q += 4;
  for (size_t i = 0; i < n; i++, q += INDEX_ENTRY_LEN) {
    entry_put(q, &e[i]);
    put_u32(q + 52, pack_of[i]);
  }
  *out = p;
  *outlen = len;
  return 0;
}

int index_decode(const uint8_t *buf, size_t len, uint32_t overhead, const struct index_visitor *v)
{
  const uint8_t *p = buf, *end = buf + len;
  if (len < 16 || memcmp(p, INDEX_MAGIC, 8) != 0)
    goto bad;
  uint32_t npacks = get_u32(p + 8);
  p += 12;
  if ((uint64_t)npacks * HASH_LEN + 4 > (uint64_t)(end - p))
    goto bad;
  for (uint32_t i = 0; i < npacks; i++, p += HASH_LEN)
    if (v->pack(v->opaque, i, p) == -1)
      return -1;
  uint32_t n = get_u32(p);
  p += 4;
  if ((uint64_t)n * INDEX_ENTRY_LEN != (uint64_t)(end - p))
    goto bad;
  for (uint32_t i = 0; i < n; i++, p += INDEX_ENTRY_LEN) {
    struct chunk_entry e;
    uint32_t ord = get_u32(p + 52);
    if (entry_get(p, overhead, &e) == -1 || ord >= npacks || e.offset < PACK_HEADER_LEN)
      goto bad;
    if (v->entry(v->opaque, ord, &e) == -1)
      return -1;
  }
  return 0;
bad:
  set_error_code(EINVAL, "index object is malformed");
  return -1;
}

/* ---- lock objects ---------------------------------------------------- */

char *lock_encode(const struct lock_info *l)
{
  struct strbuf b = STRBUF_INIT(MAX_LOCK_BYTES, "lock object");
  strbuf_appendf(&b, "pilotlight-lock=1\nexclusive=%d\nhost=", l->exclusive ? 1 : 0);
  append_encoded(&b, l->host);
  strbuf_appendf(&b, "\npid=%" PRId64 "\ncommand=", l->pid);
  append_encoded(&b, l->command);
  strbuf_appendf(&b, "\ncreated=%" PRId64 "\nrefreshed=%" PRId64 "\nend=\n", l->created,
                 l->refreshed);
  return strbuf_take(&b, NULL);
}

/* A decoded text value into a fixed buffer; -1 if malformed or too long. */
static int decode_into(const char *v, size_t n, char *out, size_t cap)
{
  char *s = decode_value(v, n);
  if (!s)
    return -1;
  size_t len = strlen(s);
  if (len >= cap) {
    free(s);
    return -1;
  }
  memcpy(out, s, len + 1);
  free(s);
  return 0;
}

int lock_decode(const char *buf, size_t len, struct lock_info *l)
{
  static const char *const keys[] = {"pilotlight-lock", "exclusive", "host",      "pid",
                                     "command",         "created",   "refreshed", "end"};
  struct lines ln = {buf, buf + len, 0};
  const char *k, *v;
  size_t kl, vl;
  uint64_t x;
  memset(l, 0, sizeof *l);
  if (len > MAX_LOCK_BYTES)
    goto bad;
  for (size_t f = 0; f < sizeof keys / sizeof *keys; f++) {
    if (next_line(&ln, &k, &kl, &v, &vl) != 1 || !key_is(k, kl, keys[f]))
      goto bad;
    switch (f) {
    case 0:
      if (vl != 1 || v[0] != '1')
        goto bad;
      break;
    case 1:
      if (vl != 1 || (v[0] != '0' && v[0] != '1'))
        goto bad;
      l->exclusive = v[0] == '1';
      break;
    case 2:
      if (decode_into(v, vl, l->host, sizeof l->host) == -1)
        goto bad;
      break;
    case 4:
      if (decode_into(v, vl, l->command, sizeof l->command) == -1)
        goto bad;
      break;
    case 3:
    case 5:
    case 6:
      if (parse_u64(v, vl, &x) == -1 || x > INT64_MAX)
        goto bad;
      *(f == 3 ? &l->pid : f == 5 ? &l->created : &l->refreshed) = (int64_t)x;
      break;
    case 7:
      if (vl != 0 || ln.p != ln.end)
        goto bad;
      break;
    }
  }
  return 0;
bad:
  set_error_code(EBADMSG, "malformed lock object");
  return -1;
}

/* ---- damage records -------------------------------------------------- */

static const char *const damage_kinds[] = {NULL, "missing", "truncated", "trailer"};

static int cmp_hash_n(const void *a, const void *b, size_t n)
{
  return memcmp(a, b, n);
}

static int cmp_dpack(const void *a, const void *b)
{
  const struct damage_pack *x = a, *y = b;
  int c = cmp_hash_n(x->pack, y->pack, HASH_LEN);
  return c ? c : (int)x->kind - (int)y->kind;
}

static int cmp_dchunk(const void *a, const void *b)
{
  return cmp_hash_n(a, b, sizeof(struct damage_chunk));
}

static int cmp_dname(const void *a, const void *b)
{
  return cmp_hash_n(a, b, HASH_LEN);
}

/* Sort v (n elements of size elem) and drop neighbours equal in their first
 * keylen bytes; returns the new length. */
static size_t sort_unique(void *v, size_t n, size_t elem, size_t keylen,
                          int (*cmp)(const void *, const void *))
{
  uint8_t *p = v;
  size_t out = 0;
  if (n == 0)
    return 0;
  qsort(v, n, elem, cmp);
  for (size_t i = 0; i < n; i++) {
    if (out && memcmp(p + (out - 1) * elem, p + i * elem, keylen) == 0)
      continue;
    if (out != i)
      memcpy(p + out * elem, p + i * elem, elem);
    out++;
  }
  return out;
}

void damage_sort(struct damage *d)
{
  d->packs.len = sort_unique(d->packs.v, d->packs.len, sizeof *d->packs.v, HASH_LEN, cmp_dpack);
  d->chunks.len =
      sort_unique(d->chunks.v, d->chunks.len, sizeof *d->chunks.v, sizeof *d->chunks.v, cmp_dchunk);
  d->index.len = sort_unique(d->index.v, d->index.len, HASH_LEN, HASH_LEN, cmp_dname);
  d->snapshots.len = sort_unique(d->snapshots.v, d->snapshots.len, HASH_LEN, HASH_LEN, cmp_dname);
}

int damage_merge(struct damage *dst, const struct damage *src)
{
  for (size_t i = 0; i < src->packs.len; i++)
    if (vec_push(&dst->packs, src->packs.v[i]) == -1)
      return -1;
  for (size_t i = 0; i < src->chunks.len; i++)
    if (vec_push(&dst->chunks, src->chunks.v[i]) == -1)
      return -1;
  for (size_t i = 0; i < src->index.len; i++)
    if (vec_push(&dst->index, src->index.v[i]) == -1)
      return -1;
  for (size_t i = 0; i < src->snapshots.len; i++)
    if (vec_push(&dst->snapshots, src->snapshots.v[i]) == -1)
      return -1;
  return 0;
}

void damage_clear(struct damage *d)
{
  vec_free(&d->packs);
  vec_free(&d->chunks);
  vec_free(&d->index);
  vec_free(&d->snapshots);
}

int damage_is_empty(const struct damage *d)
{
  return !d->packs.len && !d->chunks.len && !d->index.len && !d->snapshots.len;
}

char *damage_encode(struct damage *d)
{
  struct strbuf b = STRBUF_INIT(MAX_DAMAGE_BYTES, "damage record");
  char h1[2 * HASH_LEN + 1], h2[2 * HASH_LEN + 1];
  damage_sort(d);
  strbuf_appendf(&b, "pilotlight-damage=1\n");
  for (size_t i = 0; i < d->packs.len; i++) {
    hex_encode(d->packs.v[i].pack, HASH_LEN, h1);
    strbuf_appendf(&b, "pack=%s %s\n", h1, damage_kinds[d->packs.v[i].kind]);
  }
  for (size_t i = 0; i < d->chunks.len; i++) {
    hex_encode(d->chunks.v[i].chunk, HASH_LEN, h1);
    hex_encode(d->chunks.v[i].pack, HASH_LEN, h2);
    strbuf_appendf(&b, "chunk=%s %s\n", h1, h2);
  }
  for (size_t i = 0; i < d->index.len; i++) {
    hex_encode(d->index.v[i].h, HASH_LEN, h1);
    strbuf_appendf(&b, "index=%s\n", h1);
  }
  for (size_t i = 0; i < d->snapshots.len; i++) {
    hex_encode(d->snapshots.v[i].h, HASH_LEN, h1);
    strbuf_appendf(&b, "snapshot=%s\n", h1);
  }
  strbuf_appendf(&b, "end=\n");
  return strbuf_take(&b, NULL);
}

/* 64 lowercase hex digits at v into h. */
static int hash_field(const char *v, size_t vl, uint8_t h[HASH_LEN])
{
  if (vl < 2 * HASH_LEN)
    return -1;
  for (size_t i = 0; i < 2 * HASH_LEN; i++)
    if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
      return -1;
  return hex_decode(v, h, HASH_LEN);
}

int damage_decode(const char *buf, size_t len, struct damage *d)
{
  struct lines l = {buf, buf + len, 0};
  const char *k, *v;
  size_t kl, vl;
  int r;
  memset(d, 0, sizeof *d);
  if (len > MAX_DAMAGE_BYTES || next_line(&l, &k, &kl, &v, &vl) != 1 ||
      !key_is(k, kl, "pilotlight-damage") || vl != 1 || v[0] != '1') {
    set_error_code(EINVAL, "not a pilotlight damage record (or a newer version: upgrade "
                           "pilotlight)");
    return -1;
  }
  while ((r = next_line(&l, &k, &kl, &v, &vl)) == 1) {
    if (key_is(k, kl, "end")) {
      if (vl != 0 || l.p != l.end)
        goto bad;
      return 0;
    }
    if (key_is(k, kl, "pack")) {
      struct damage_pack p = {.kind = 0};
      if (hash_field(v, vl, p.pack) == -1 || vl < 2 * HASH_LEN + 2 || v[2 * HASH_LEN] != ' ')
        goto bad;
      for (uint8_t i = 1; i < sizeof damage_kinds / sizeof *damage_kinds; i++)
        if (key_is(v + 2 * HASH_LEN + 1, vl - 2 * HASH_LEN - 1, damage_kinds[i]))
          p.kind = i;
      if (!p.kind || vec_push(&d->packs, p) == -1)
        goto bad;
    } else if (key_is(k, kl, "chunk")) {
      struct damage_chunk c = {{0}, {0}};
      if (vl != 4 * HASH_LEN + 1 || hash_field(v, vl, c.chunk) == -1 || v[2 * HASH_LEN] != ' ' ||
          hash_field(v + 2 * HASH_LEN + 1, vl - 2 * HASH_LEN - 1, c.pack) == -1 ||
          vec_push(&d->chunks, c) == -1)
        goto bad;
    } else if (key_is(k, kl, "index") || key_is(k, kl, "snapshot")) {
      struct damage_name n = {{0}};
      if (vl != 2 * HASH_LEN || hash_field(v, vl, n.h) == -1 ||
          vec_push(key_is(k, kl, "index") ? &d->index : &d->snapshots, n) == -1)
        goto bad;
    }
    /* Other keys: later additions, ignored. */
  }
bad:
  set_error_code(EINVAL, "damage record is malformed (line %lu)", l.lineno);
  return -1;
}
