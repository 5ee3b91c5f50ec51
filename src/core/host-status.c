/* Host status objects (docs/FORMAT.md, Host status): named by a keyed hash
 * of the host name, so the names leak nothing in an encrypted repository,
 * and sealed with their own key as associated data, so one host's status
 * moved under another's name fails to open. */
#include "host-status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "repo-internal.h"
#include "../util/error.h"
#include "../util/hash.h"
#include "../util/vec.h"

#define STATUS_DIR "status/"
/* "status/" and 32 hex digits. */
#define STATUS_KEY_LEN (sizeof STATUS_DIR + 32)

static void status_key(const struct repo *r, const char *host, char key[STATUS_KEY_LEN])
{
  static const char tag[] = "pilotlight host status\n";
  char buf[sizeof tag + 256];
  uint8_t h[HASH_LEN];
  int n = snprintf(buf, sizeof buf, "%s%s", tag, host);
  chunk_name(r->keys, buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, h);
  memcpy(key, STATUS_DIR, strlen(STATUS_DIR));
  hex_encode(h, 16, key + strlen(STATUS_DIR));
}

int repo_put_host_status(struct repo *r, const char *host, const void *doc, size_t len)
{
  char key[STATUS_KEY_LEN];
  uint8_t *sealed = NULL;
  size_t slen;
  if (len > HOST_STATUS_MAX - 64) {
    set_error_code(EFBIG, "status of host %s: %zu bytes, more than %u", host, len,
                   HOST_STATUS_MAX - 64);
    return -1;
  }
  status_key(r, host, key);
  if (repo_seal(r, key, doc, len, &sealed, &slen) == -1)
    return -1;
  int ret = store_put(r->store, key, sealed, slen, 0);
  if (ret == -1)
    prefix_error("writing the status of host %s", host);
  free(sealed);
  return ret;
}

int repo_list_host_status(struct repo *r, host_status_cb cb, void *opaque)
{
  struct strings keys = {0};
  int ret = -1;
  if (store_list_keys(r->store, STATUS_DIR, &keys) == -1)
    goto out;
  for (size_t i = 0; i < keys.len; i++) {
    void *buf = NULL;
    uint8_t *plain = NULL;
    size_t len, plen;
    if (strlen(keys.v[i]) + 1 != STATUS_KEY_LEN)
      continue; /* not one of ours (a folder's temporary file is never listed) */
    if (store_get(r->store, keys.v[i], HOST_STATUS_MAX, &buf, &len) == -1) {
      if (get_errno() == ENOENT)
        continue; /* removed since the listing */
      if (get_errno() != EFBIG && get_errno() != EIO)
        goto out;
      repo_warn(r, "%s: %s (skipped)", keys.v[i], get_error());
      continue;
    }
    int rc = repo_unseal(r, keys.v[i], buf, len, &plain, &plen);
    free(buf);
    if (rc == -1) {
      repo_warn(r, "%s: %s (skipped)", keys.v[i], get_error());
      continue;
    }
    rc = cb(opaque, (const char *)plain, plen);
    free(plain);
    if (rc == -1)
      goto out;
  }
  ret = 0;
out:
  strings_free(&keys);
  return ret;
}
