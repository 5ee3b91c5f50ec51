/* Streaming XML walker for S3 replies: tracks the element path (bounded
 * depth), decodes text and hands (path, text) pairs to a per-reply handler.
 * Attributes, comments, processing instructions and DOCTYPE are skipped;
 * no external entities exist here. */
#define _GNU_SOURCE
#include "s3-xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/error.h"
#include "../util/compiler.h"

struct xml_walk {
  const char *names[S3_XML_MAX_DEPTH]; /* point into the input */
  size_t lens[S3_XML_MAX_DEPTH];
  int depth;
  char text[S3_XML_MAX_TEXT + 1];
  size_t textlen;
  int text_overflow;
  /* Called at each end tag with the decoded text of a leaf element. */
  int (*leaf)(void *opaque, const struct xml_walk *w, const char *text, size_t len);
  /* Called at each end tag of element at depth (before popping). */
  int (*end)(void *opaque, const struct xml_walk *w);
  void *opaque;
};

/* Is the element path exactly the given names? */
static int path_is(const struct xml_walk *w, int n, const char *const *names)
{
  if (w->depth != n)
    return 0;
  for (int i = 0; i < n; i++) {
    size_t l = strlen(names[i]);
    if (w->lens[i] != l || memcmp(w->names[i], names[i], l) != 0)
      return 0;
  }
  return 1;
}

static void text_add(struct xml_walk *w, const char *s, size_t n)
{
  if (w->textlen + n > S3_XML_MAX_TEXT) {
    w->text_overflow = 1;
    n = S3_XML_MAX_TEXT - w->textlen;
  }
  memcpy(w->text + w->textlen, s, n);
  w->textlen += n;
}

static void utf8_add(struct xml_walk *w, unsigned long cp)
{
  char b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xc0 | (cp >> 6));
    b[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xe0 | (cp >> 12));
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    b[0] = (char)(0xf0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  text_add(w, b, n);
}

/* Decode character data s[0..n) into w->text. */
static int decode_text(struct xml_walk *w, const char *s, size_t n)
{
  size_t i = 0;
  while (i < n) {
    const char *amp = memchr(s + i, '&', n - i);
    size_t run = amp ? (size_t)(amp - (s + i)) : n - i;
    text_add(w, s + i, run);
    i += run;
    if (i >= n)
      break;
    const char *semi = memchr(s + i, ';', n - i < 12 ? n - i : 12);
    if (!semi)
      return -1;
    const char *ent = s + i + 1;
    size_t elen = (size_t)(semi - ent);
    if (elen == 2 && memcmp(ent, "lt", 2) == 0) {
      text_add(w, "<", 1);
    } else if (elen == 2 && memcmp(ent, "gt", 2) == 0) {
      text_add(w, ">", 1);
    } else if (elen == 3 && memcmp(ent, "amp", 3) == 0) {
      text_add(w, "&", 1);
    } else if (elen == 4 && memcmp(ent, "quot", 4) == 0) {
      text_add(w, "\"", 1);
    } else if (elen == 4 && memcmp(ent, "apos", 4) == 0) {
      text_add(w, "'", 1);
    } else if (elen >= 2 && ent[0] == '#') {
      unsigned long cp = 0;
      int hex = ent[1] == 'x' || ent[1] == 'X';
      size_t j = hex ? 2 : 1;
      if (j >= elen)
        return -1;
      for (; j < elen; j++) {
        char c = ent[j];
        int d;
        if (c >= '0' && c <= '9')
          d = c - '0';
        else if (hex && c >= 'a' && c <= 'f')
          d = c - 'a' + 10;
        else if (hex && c >= 'A' && c <= 'F')
          d = c - 'A' + 10;
        else
          return -1;
        cp = cp * (hex ? 16 : 10) + (unsigned long)d;
        if (cp > 0x10ffff)
          return -1;
      }
      if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
      utf8_add(w, cp);
    } else {
      return -1;
    }
    i = (size_t)(semi - s) + 1;
  }
  return 0;
}

static int is_name_char(char c)
{
  return c != 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '>' && c != '/' &&
         c != '<' && c != '=';
}

/* Find needle in [p, end); NULL if absent. */
static const char *find(const char *p, const char *end, const char *needle)
{
  size_t nl = strlen(needle);
  if ((size_t)(end - p) < nl)
    return NULL;
  return memmem(p, (size_t)(end - p), needle, nl);
}

/* Walk buf; returns 0, or -1 on malformed input or a handler's -1. */
static int xml_walk_run(struct xml_walk *w, const char *buf, size_t len)
{
  const char *p = buf, *end = buf + len;
  int seen_root = 0;
  w->depth = 0;
  w->textlen = 0;
  w->text_overflow = 0;
  while (p < end) {
    const char *lt = memchr(p, '<', (size_t)(end - p));
    if (!lt) {
      /* Trailing text after the root: only whitespace is allowed. */
      for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
          return -1;
      break;
    }
    if (w->depth > 0) {
      if (decode_text(w, p, (size_t)(lt - p)) == -1)
        return -1;
    }
    p = lt;
    if (end - p >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
      const char *close = find(p + 9, end, "]]>");
      if (!close || w->depth == 0)
        return -1;
      text_add(w, p + 9, (size_t)(close - (p + 9)));
      p = close + 3;
    } else if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
      const char *close = find(p + 4, end, "-->");
      if (!close)
        return -1;
      p = close + 3;
    } else if (end - p >= 2 && (p[1] == '?' || p[1] == '!')) {
      const char *close = memchr(p, '>', (size_t)(end - p));
      if (!close)
        return -1;
      p = close + 1;
    } else if (end - p >= 2 && p[1] == '/') {
      const char *name = p + 2, *q = name;
      while (q < end && is_name_char(*q))
        q++;
      size_t nlen = (size_t)(q - name);
      while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
        q++;
      if (q >= end || *q != '>' || w->depth == 0)
        return -1;
      if (w->lens[w->depth - 1] != nlen || memcmp(w->names[w->depth - 1], name, nlen) != 0)
        return -1;
      w->text[w->textlen] = 0;
      if (w->leaf && w->leaf(w->opaque, w, w->text, w->textlen) == -1)
        return -1;
      if (w->end && w->end(w->opaque, w) == -1)
        return -1;
      w->depth--;
      w->textlen = 0;
      w->text_overflow = 0;
      p = q + 1;
    } else {
      const char *name = p + 1, *q = name;
      while (q < end && is_name_char(*q))
        q++;
      size_t nlen = (size_t)(q - name);
      if (nlen == 0)
        return -1;
      /* Skip attributes, honouring quotes, up to '>' or '/>'. */
      char quote = 0;
      while (q < end && (quote || *q != '>')) {
        if (quote && *q == quote)
          quote = 0;
        else if (!quote && (*q == '"' || *q == '\''))
          quote = *q;
        q++;
      }
      if (q >= end)
        return -1;
      int empty = q[-1] == '/' && q - 1 >= name + nlen;
      if (w->depth == 0 && seen_root)
        return -1;
      if (w->depth >= S3_XML_MAX_DEPTH)
        return -1;
      seen_root = 1;
      w->names[w->depth] = name;
      w->lens[w->depth] = nlen;
      w->depth++;
      w->textlen = 0;
      w->text_overflow = 0;
      if (empty) {
        w->text[0] = 0;
        if (w->leaf && w->leaf(w->opaque, w, w->text, 0) == -1)
          return -1;
        if (w->end && w->end(w->opaque, w) == -1)
          return -1;
        w->depth--;
      }
      p = q + 1;
    }
  }
  if (w->depth != 0 || !seen_root)
    return -1;
  return 0;
}

/* ---- ListObjectsV2 ---- */

struct list_state {
  struct s3_list_page *page;
  size_t cap;
  char *key; /* of the <Contents> being read */
  uint64_t size;
  int64_t mtime;
  int have_size;
  int error; /* errno to report, 0 for malformed */
};

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
  uint64_t v = 0;
  if (len == 0 || len > 20)
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

static const char *const p_truncated[] = {"ListBucketResult", "IsTruncated"};
static const char *const p_token[] = {"ListBucketResult", "NextContinuationToken"};
static const char *const p_contents[] = {"ListBucketResult", "Contents"};
static const char *const p_key[] = {"ListBucketResult", "Contents", "Key"};
static const char *const p_size[] = {"ListBucketResult", "Contents", "Size"};
static const char *const p_mtime[] = {"ListBucketResult", "Contents", "LastModified"};

/* An ISO 8601 UTC time as S3 writes it ("2026-12-02T06:40:01.123Z") in
 * seconds since the epoch; 0 if it does not parse (the time is advisory). */
int64_t s3_parse_time(const char *text, size_t len)
{
  char buf[40];
  struct tm tm = {0};
  if (len >= sizeof buf)
    return 0;
  memcpy(buf, text, len);
  buf[len] = 0;
  const char *end = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end || (*end != '.' && *end != 'Z'))
    return 0;
  time_t t = timegm(&tm);
  return t == (time_t)-1 ? 0 : (int64_t)t;
}

static int list_leaf(void *opaque, const struct xml_walk *w, const char *text, size_t len)
{
  struct list_state *st = opaque;
  if (path_is(w, 2, p_truncated)) {
    st->page->is_truncated = len == 4 && memcmp(text, "true", 4) == 0;
  } else if (path_is(w, 2, p_token)) {
    if (w->text_overflow || len == 0)
      return -1;
    free(st->page->next_token);
    st->page->next_token = strndup(text, len);
    if (!st->page->next_token) {
      st->error = ENOMEM;
      return -1;
    }
  } else if (path_is(w, 3, p_key)) {
    if (w->text_overflow || len == 0 || memchr(text, 0, len))
      return -1;
    free(st->key);
    st->key = strndup(text, len);
    if (!st->key) {
      st->error = ENOMEM;
      return -1;
    }
  } else if (path_is(w, 3, p_size)) {
    if (parse_u64(text, len, &st->size) == -1)
      return -1;
    st->have_size = 1;
  } else if (path_is(w, 3, p_mtime)) {
    st->mtime = s3_parse_time(text, len);
  }
  return 0;
}

static int list_end(void *opaque, const struct xml_walk *w)
{
  struct list_state *st = opaque;
  if (w->depth == 1 && (w->lens[0] != 16 || memcmp(w->names[0], "ListBucketResult", 16) != 0))
    return -1;
  if (!path_is(w, 2, p_contents))
    return 0;
  if (!st->key || !st->have_size)
    return -1;
  struct s3_list_page *pg = st->page;
  if (pg->nentries == st->cap) {
    size_t ncap = st->cap ? 2 * st->cap : 64;
    struct s3_list_entry *ne = realloc(pg->entries, ncap * sizeof *ne);
    if (!ne) {
      st->error = ENOMEM;
      return -1;
    }
    pg->entries = ne;
    st->cap = ncap;
  }
  pg->entries[pg->nentries].key = st->key;
  pg->entries[pg->nentries].size = st->size;
  pg->entries[pg->nentries].mtime = st->mtime;
  pg->nentries++;
  st->key = NULL;
  st->have_size = 0;
  st->mtime = 0;
  return 0;
}

void s3_list_page_free(struct s3_list_page *page)
{
  if (!page)
    return;
  for (size_t i = 0; i < page->nentries; i++)
    free(page->entries[i].key);
  free(page->entries);
  free(page->next_token);
  memset(page, 0, sizeof *page);
}

int s3_list_page_parse(const char *buf, size_t len, struct s3_list_page *page)
{
  memset(page, 0, sizeof *page);
  if (len > S3_XML_MAX_BODY) {
    set_error(EFBIG, "ListObjectsV2 reply of %zu bytes is too large", len);
    return -1;
  }
  struct list_state st = {.page = page};
  struct xml_walk *w = calloc(1, sizeof *w);
  if (!w) {
    set_error(errno, "calloc");
    return -1;
  }
  w->leaf = list_leaf;
  w->end = list_end;
  w->opaque = &st;
  int r = xml_walk_run(w, buf, len);
  free(w);
  free(st.key);
  if (r == -1) {
    if (st.error)
      set_error(st.error, "ListObjectsV2 reply");
    else
      set_error(EBADMSG, "malformed ListObjectsV2 reply");
    s3_list_page_free(page);
    return -1;
  }
  if (page->is_truncated && !page->next_token) {
    set_error(EBADMSG, "ListObjectsV2 reply is truncated but has no continuation token");
    s3_list_page_free(page);
    return -1;
  }
  return 0;
}

/* ---- Error ---- */

static void copy_field(char *dst, size_t cap, const char *text, size_t len)
{
  size_t n = len < cap - 1 ? len : cap - 1;
  /* Keep messages on one line and printable. */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)text[i];
    dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
  }
  dst[n] = 0;
}

static const char *const p_code[] = {"Error", "Code"};
static const char *const p_message[] = {"Error", "Message"};
static const char *const p_reqid[] = {"Error", "RequestId"};

static int error_leaf(void *opaque, const struct xml_walk *w, const char *text, size_t len)
{
  struct s3_error_info *info = opaque;
  if (path_is(w, 2, p_code))
    copy_field(info->code, sizeof info->code, text, len);
  else if (path_is(w, 2, p_message))
    copy_field(info->message, sizeof info->message, text, len);
  else if (path_is(w, 2, p_reqid))
    copy_field(info->request_id, sizeof info->request_id, text, len);
  return 0;
}

static int error_end(void *opaque PL_UNUSED, const struct xml_walk *w)
{
  if (w->depth == 1 && (w->lens[0] != 5 || memcmp(w->names[0], "Error", 5) != 0))
    return -1;
  return 0;
}

int s3_error_parse(const char *buf, size_t len, struct s3_error_info *info)
{
  memset(info, 0, sizeof *info);
  if (len == 0 || len > S3_XML_MAX_BODY)
    return 0;
  struct xml_walk *w = calloc(1, sizeof *w);
  if (!w)
    return 0;
  w->leaf = error_leaf;
  w->end = error_end;
  w->opaque = info;
  int r = xml_walk_run(w, buf, len);
  free(w);
  if (r == -1) {
    memset(info, 0, sizeof *info);
    return 0;
  }
  return 1;
}

/* ---- InitiateMultipartUploadResult ---- */

struct upload_state {
  char *id;
  int error;
};

static const char *const p_upload[] = {"InitiateMultipartUploadResult", "UploadId"};

static int upload_leaf(void *opaque, const struct xml_walk *w, const char *text, size_t len)
{
  struct upload_state *st = opaque;
  if (!path_is(w, 2, p_upload))
    return 0;
  if (w->text_overflow || len == 0 || memchr(text, 0, len))
    return -1;
  free(st->id);
  st->id = strndup(text, len);
  if (!st->id) {
    st->error = ENOMEM;
    return -1;
  }
  return 0;
}

char *s3_upload_id_parse(const char *buf, size_t len)
{
  struct upload_state st = {0};
  if (len > S3_XML_MAX_BODY) {
    set_error(EFBIG, "InitiateMultipartUpload reply of %zu bytes is too large", len);
    return NULL;
  }
  struct xml_walk *w = calloc(1, sizeof *w);
  if (!w) {
    set_error(errno, "calloc");
    return NULL;
  }
  w->leaf = upload_leaf;
  w->opaque = &st;
  int r = xml_walk_run(w, buf, len);
  free(w);
  if (r == -1 || !st.id) {
    free(st.id);
    set_error(st.error ? st.error : EBADMSG, "malformed InitiateMultipartUpload reply");
    return NULL;
  }
  return st.id;
}

/* ---- ListMultipartUploadsResult ---- */

struct uploads_state {
  struct s3_uploads_page *page;
  size_t cap;
  char *key, *id; /* of the <Upload> being read */
  int64_t initiated;
  int error;
};

static const char *const p_u_truncated[] = {"ListMultipartUploadsResult", "IsTruncated"};
static const char *const p_u_next_key[] = {"ListMultipartUploadsResult", "NextKeyMarker"};
static const char *const p_u_next_id[] = {"ListMultipartUploadsResult", "NextUploadIdMarker"};
static const char *const p_u_upload[] = {"ListMultipartUploadsResult", "Upload"};
static const char *const p_u_key[] = {"ListMultipartUploadsResult", "Upload", "Key"};
static const char *const p_u_id[] = {"ListMultipartUploadsResult", "Upload", "UploadId"};
static const char *const p_u_init[] = {"ListMultipartUploadsResult", "Upload", "Initiated"};

/* Replace *dst with a copy of text; -1 for an empty, overlong or NUL-holding
 * value (allow_empty: an empty one is NULL). */
static int take_text(int *error, const struct xml_walk *w, char **dst, const char *text, size_t len,
                     int allow_empty)
{
  if (w->text_overflow || memchr(text, 0, len) || (len == 0 && !allow_empty))
    return -1;
  free(*dst);
  *dst = NULL;
  if (len == 0)
    return 0;
  *dst = strndup(text, len);
  if (!*dst) {
    *error = ENOMEM;
    return -1;
  }
  return 0;
}

static int uploads_leaf(void *opaque, const struct xml_walk *w, const char *text, size_t len)
{
  struct uploads_state *st = opaque;
  if (path_is(w, 2, p_u_truncated))
    st->page->is_truncated = len == 4 && memcmp(text, "true", 4) == 0;
  else if (path_is(w, 2, p_u_next_key))
    return take_text(&st->error, w, &st->page->next_key, text, len, 1);
  else if (path_is(w, 2, p_u_next_id))
    return take_text(&st->error, w, &st->page->next_upload, text, len, 1);
  else if (path_is(w, 3, p_u_key))
    return take_text(&st->error, w, &st->key, text, len, 0);
  else if (path_is(w, 3, p_u_id))
    return take_text(&st->error, w, &st->id, text, len, 0);
  else if (path_is(w, 3, p_u_init))
    st->initiated = s3_parse_time(text, len);
  return 0;
}

static int uploads_end(void *opaque, const struct xml_walk *w)
{
  struct uploads_state *st = opaque;
  if (w->depth == 1 &&
      (w->lens[0] != 26 || memcmp(w->names[0], "ListMultipartUploadsResult", 26) != 0))
    return -1;
  if (!path_is(w, 2, p_u_upload))
    return 0;
  if (!st->key || !st->id)
    return -1;
  struct s3_uploads_page *pg = st->page;
  if (pg->nentries == st->cap) {
    size_t ncap = st->cap ? 2 * st->cap : 16;
    struct s3_upload_entry *ne = realloc(pg->entries, ncap * sizeof *ne);
    if (!ne) {
      st->error = ENOMEM;
      return -1;
    }
    pg->entries = ne;
    st->cap = ncap;
  }
  pg->entries[pg->nentries++] =
      (struct s3_upload_entry){.key = st->key, .upload_id = st->id, .initiated = st->initiated};
  st->key = st->id = NULL;
  st->initiated = 0;
  return 0;
}

void s3_uploads_page_free(struct s3_uploads_page *page)
{
  if (!page)
    return;
  for (size_t i = 0; i < page->nentries; i++) {
    free(page->entries[i].key);
    free(page->entries[i].upload_id);
  }
  free(page->entries);
  free(page->next_key);
  free(page->next_upload);
  memset(page, 0, sizeof *page);
}

int s3_uploads_page_parse(const char *buf, size_t len, struct s3_uploads_page *page)
{
  memset(page, 0, sizeof *page);
  if (len > S3_XML_MAX_BODY) {
    set_error(EFBIG, "ListMultipartUploads reply of %zu bytes is too large", len);
    return -1;
  }
  struct uploads_state st = {.page = page};
  struct xml_walk *w = calloc(1, sizeof *w);
  if (!w) {
    set_error(errno, "calloc");
    return -1;
  }
  w->leaf = uploads_leaf;
  w->end = uploads_end;
  w->opaque = &st;
  int r = xml_walk_run(w, buf, len);
  free(w);
  free(st.key);
  free(st.id);
  if (r == -1) {
    if (st.error)
      set_error(st.error, "ListMultipartUploads reply");
    else
      set_error(EBADMSG, "malformed ListMultipartUploads reply");
    s3_uploads_page_free(page);
    return -1;
  }
  if (page->is_truncated && !page->next_key) {
    set_error(EBADMSG, "ListMultipartUploads reply is truncated but has no NextKeyMarker");
    s3_uploads_page_free(page);
    return -1;
  }
  return 0;
}

/* ---- ListVersionsResult ---- */

struct versions_state {
  struct s3_versions_page *page;
  size_t cap;
  struct s3_version_entry cur; /* of the <Version> or <DeleteMarker> being read */
  int error;
};

static const char *const p_v_truncated[] = {"ListVersionsResult", "IsTruncated"};
static const char *const p_v_next_key[] = {"ListVersionsResult", "NextKeyMarker"};
static const char *const p_v_next_id[] = {"ListVersionsResult", "NextVersionIdMarker"};

/* Is the element at depth 2 a <Version> or a <DeleteMarker> of a
 * ListVersionsResult? 1 for a version, 2 for a marker, 0 otherwise. */
static int version_element(const struct xml_walk *w)
{
  if (w->depth < 2 || w->lens[0] != 18 || memcmp(w->names[0], "ListVersionsResult", 18) != 0)
    return 0;
  if (w->lens[1] == 7 && memcmp(w->names[1], "Version", 7) == 0)
    return 1;
  if (w->lens[1] == 12 && memcmp(w->names[1], "DeleteMarker", 12) == 0)
    return 2;
  return 0;
}

static int leaf_is(const struct xml_walk *w, const char *name)
{
  size_t l = strlen(name);
  return w->depth == 3 && w->lens[2] == l && memcmp(w->names[2], name, l) == 0;
}

static int versions_leaf(void *opaque, const struct xml_walk *w, const char *text, size_t len)
{
  struct versions_state *st = opaque;
  int rc = 0;
  if (path_is(w, 2, p_v_truncated))
    st->page->is_truncated = len == 4 && memcmp(text, "true", 4) == 0;
  else if (path_is(w, 2, p_v_next_key))
    rc = take_text(&st->error, w, &st->page->next_key, text, len, 1);
  else if (path_is(w, 2, p_v_next_id))
    rc = take_text(&st->error, w, &st->page->next_version, text, len, 1);
  else if (!version_element(w))
    return 0;
  else if (leaf_is(w, "Key"))
    rc = take_text(&st->error, w, &st->cur.key, text, len, 0);
  else if (leaf_is(w, "VersionId"))
    rc = take_text(&st->error, w, &st->cur.version_id, text, len, 0);
  else if (leaf_is(w, "IsLatest"))
    st->cur.is_latest = len == 4 && memcmp(text, "true", 4) == 0;
  else if (leaf_is(w, "LastModified"))
    st->cur.mtime = s3_parse_time(text, len);
  else if (leaf_is(w, "Size")) {
    uint64_t v = 0;
    if (len == 0 || len > 19)
      return -1;
    for (size_t i = 0; i < len; i++) {
      if (text[i] < '0' || text[i] > '9')
        return -1;
      v = v * 10 + (uint64_t)(text[i] - '0');
    }
    st->cur.size = v;
  }
  return rc;
}

static void version_entry_free(struct s3_version_entry *e)
{
  free(e->key);
  free(e->version_id);
  memset(e, 0, sizeof *e);
}

static int versions_end(void *opaque, const struct xml_walk *w)
{
  struct versions_state *st = opaque;
  if (w->depth == 1 && (w->lens[0] != 18 || memcmp(w->names[0], "ListVersionsResult", 18) != 0))
    return -1;
  int kind = w->depth == 2 ? version_element(w) : 0;
  if (!kind)
    return 0;
  if (!st->cur.key || !st->cur.version_id)
    return -1;
  st->cur.delete_marker = kind == 2;
  struct s3_versions_page *pg = st->page;
  if (pg->nentries == st->cap) {
    size_t ncap = st->cap ? 2 * st->cap : 16;
    struct s3_version_entry *ne = realloc(pg->entries, ncap * sizeof *ne);
    if (!ne) {
      st->error = ENOMEM;
      return -1;
    }
    pg->entries = ne;
    st->cap = ncap;
  }
  pg->entries[pg->nentries++] = st->cur;
  memset(&st->cur, 0, sizeof st->cur);
  return 0;
}

void s3_versions_page_free(struct s3_versions_page *page)
{
  if (!page)
    return;
  for (size_t i = 0; i < page->nentries; i++)
    version_entry_free(&page->entries[i]);
  free(page->entries);
  free(page->next_key);
  free(page->next_version);
  memset(page, 0, sizeof *page);
}

int s3_versions_page_parse(const char *buf, size_t len, struct s3_versions_page *page)
{
  memset(page, 0, sizeof *page);
  if (len > S3_XML_MAX_BODY) {
    set_error(EFBIG, "ListObjectVersions reply of %zu bytes is too large", len);
    return -1;
  }
  struct versions_state st = {.page = page};
  struct xml_walk *w = calloc(1, sizeof *w);
  if (!w) {
    set_error(errno, "calloc");
    return -1;
  }
  w->leaf = versions_leaf;
  w->end = versions_end;
  w->opaque = &st;
  int r = xml_walk_run(w, buf, len);
  free(w);
  version_entry_free(&st.cur);
  if (r == -1) {
    if (st.error)
      set_error(st.error, "ListObjectVersions reply");
    else
      set_error(EBADMSG, "malformed ListObjectVersions reply");
    s3_versions_page_free(page);
    return -1;
  }
  if (page->is_truncated && !page->next_key) {
    set_error(EBADMSG, "ListObjectVersions reply is truncated but has no NextKeyMarker");
    s3_versions_page_free(page);
    return -1;
  }
  return 0;
}

/* ---- ObjectLockConfiguration ---- */

static const char *const p_lock_enabled[] = {"ObjectLockConfiguration", "ObjectLockEnabled"};

static int lock_leaf(void *opaque, const struct xml_walk *w, const char *text, size_t len)
{
  if (path_is(w, 2, p_lock_enabled))
    *(int *)opaque = len == 7 && memcmp(text, "Enabled", 7) == 0;
  return 0;
}

int s3_object_lock_parse(const char *buf, size_t len)
{
  int enabled = 0;
  if (len > S3_XML_MAX_BODY)
    return 0;
  struct xml_walk *w = calloc(1, sizeof *w);
  if (!w)
    return 0;
  w->leaf = lock_leaf;
  w->opaque = &enabled;
  int r = xml_walk_run(w, buf, len);
  free(w);
  return r == 0 && enabled;
}
