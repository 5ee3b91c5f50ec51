/* pilotlight key: the key objects of an encrypted repository, each of which
 * opens its master key with one password (docs/FORMAT.md, Key objects). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(void)
{
  printf("usage: pilotlight -r REPO key list [--json]\n"
         "       pilotlight -r REPO key add [--new-password-file FILE]\n"
         "       pilotlight -r REPO key remove ID\n"
         "       pilotlight -r REPO key passwd [--new-password-file FILE]\n"
         "\n"
         "An encrypted repository's master key is wrapped once per password, in a key\n"
         "object under keys/. Any one of the passwords opens the repository.\n"
         "  list    the key objects: id (a prefix is enough elsewhere), creation time,\n"
         "          scrypt cost; '*' marks the one that opened the repository now\n"
         "  add     add a password (asked twice on the terminal, or FILE's first line)\n"
         "  remove  remove a key object; the last one, and the one whose password\n"
         "          opened the repository now, are refused\n"
         "  passwd  replace the current password: add the new one, remove the old one\n"
         "The current password comes from --password-file, --password-command,\n"
         "PILOTLIGHT_PASSWORD_FILE, PILOTLIGHT_PASSWORD_COMMAND, PILOTLIGHT_PASSWORD or\n"
         "the terminal, as for every command.\n");
}

static int list(struct repo *r, int json)
{
  struct repo_key_info *k;
  size_t n;
  if (repo_key_list(r, &k, &n) == -1)
    return fail_lib();
  if (json)
    printf("[");
  else
    printf("   %-16s  %-20s  %s\n", "ID", "CREATED (UTC)", "SCRYPT N,r,p");
  for (size_t i = 0; i < n; i++) {
    char t[32];
    format_time(k[i].created, t, sizeof t);
    if (json)
      printf("%s\n  {\"id\":\"%s\",\"created\":\"%s\",\"scrypt_n\":%llu,\"scrypt_r\":%u,"
             "\"scrypt_p\":%u,\"current\":%s}",
             i ? "," : "", k[i].id, t, (unsigned long long)k[i].n, k[i].r, k[i].p,
             k[i].current ? "true" : "false");
    else
      printf("%s  %-16.16s  %-20s  %llu,%u,%u\n", k[i].current ? " *" : "  ", k[i].id, t,
             (unsigned long long)k[i].n, k[i].r, k[i].p);
  }
  if (json)
    printf("%s]\n", n ? "\n" : "");
  free(k);
  return 0;
}

static int add(struct repo *r, const char *file, uint64_t kdf_n, int replace)
{
  char pw[PASSWORD_MAX], id[2 * HASH_LEN + 1];
  size_t len;
  int rc = cli_new_password(file, pw, sizeof pw, &len);
  if (rc == 0)
    rc = replace ? repo_key_passwd(r, pw, len, kdf_n, id) : repo_key_add(r, pw, len, kdf_n, id);
  explicit_bzero(pw, sizeof pw);
  if (rc == -1)
    return fail_lib();
  if (replace)
    printf("changed the password: added key %.16s, removed the old key\n", id);
  else
    printf("added key %.16s\n", id);
  return 0;
}

int cmd_key(struct cli *c, int argc, char **argv)
{
  enum { O_JSON = 256, O_NEWPW };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"json", no_argument, NULL, O_JSON},
      {"new-password-file", required_argument, NULL, O_NEWPW},
      {NULL, 0, NULL, 0},
  };
  const char *newpw = NULL;
  int json = 0, ch;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      usage();
      return 0;
    case O_JSON:
      json = 1;
      break;
    case O_NEWPW:
      newpw = optarg;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind >= argc)
    return fail_usage(c, "give a subcommand: list, add, remove ID or passwd");
  const char *sub = argv[optind++];
  int is_list = strcmp(sub, "list") == 0, is_add = strcmp(sub, "add") == 0,
      is_remove = strcmp(sub, "remove") == 0, is_passwd = strcmp(sub, "passwd") == 0;
  if (!is_list && !is_add && !is_remove && !is_passwd)
    return fail_usage(c, "unknown subcommand '%s': give list, add, remove ID or passwd", sub);
  if (is_remove && optind + 1 != argc)
    return fail_usage(c, "key remove takes one key id (pilotlight key list shows them)");
  if (!is_remove && optind != argc)
    return fail_usage(c, "unexpected argument '%s'", argv[optind]);
  if (json && !is_list)
    return fail_usage(c, "--json goes with key list");
  if (newpw && !is_add && !is_passwd)
    return fail_usage(c, "--new-password-file goes with key add and key passwd");
  c->lock = REPO_LOCK_NONE;
  struct repo *r = cli_open_repo(c);
  if (!r)
    return EXIT_FAIL;
  int rc;
  if (!repo_encrypted(r))
    rc = fail_msg("%s is not encrypted (created with init --no-encryption): it has no keys",
                  cli_repo(c));
  else if (is_list)
    rc = list(r, json);
  else if (is_remove) {
    rc = repo_key_remove(r, argv[optind]) == -1 ? fail_lib() : 0;
    if (rc == 0)
      printf("removed key %s\n", argv[optind]);
  } else
    rc = add(r, newpw, c->kdf_n, is_passwd);
  repo_free(r);
  return rc;
}
