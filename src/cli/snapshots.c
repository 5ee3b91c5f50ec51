/* pilotlight snapshots: list snapshots, as a table or JSON. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static void print_json(struct snapshot *const *s, size_t n)
{
  printf("[");
  for (size_t i = 0; i < n; i++) {
    char t[32];
    format_time(s[i]->time, t, sizeof t);
    printf("%s\n  {\"id\":\"%s\",\"disk\":", i ? "," : "", s[i]->id);
    json_string(stdout, s[i]->disk);
    printf(",\"time\":\"%s\",\"time_unix\":%lld,\"size\":%llu,\"block_size\":%u,\"parent\":", t,
           (long long)s[i]->time, (unsigned long long)s[i]->size, s[i]->block_size);
    if (s[i]->parent[0])
      printf("\"%s\"", s[i]->parent);
    else
      printf("null");
    printf(",\"mode\":");
    json_string(stdout, s[i]->mode);
    printf(",\"source\":");
    json_string(stdout, s[i]->source);
    printf(",\"cbt\":");
    json_string(stdout, s[i]->cbt);
    printf(",\"host\":");
    json_string(stdout, s[i]->host);
    printf(",\"note\":");
    json_string(stdout, s[i]->note);
    printf(",\"bytes_read\":%llu,\"bytes_new\":%llu,\"bytes_stored\":%llu,\"used_end\":%llu}",
           (unsigned long long)s[i]->bytes_read, (unsigned long long)s[i]->bytes_new,
           (unsigned long long)s[i]->bytes_stored, (unsigned long long)s[i]->used_end);
  }
  printf("%s]\n", n ? "\n" : "");
}

static void print_table(struct snapshot *const *s, size_t n)
{
  printf("%-12s  %-16s  %-20s  %10s  %10s  %10s  %-15s  %s\n", "ID", "DISK", "TIME (UTC)", "SIZE",
         "NEW", "USED END", "MODE", "PARENT");
  for (size_t i = 0; i < n; i++) {
    char t[32], size[32], nw[32], used[32];
    format_time(s[i]->time, t, sizeof t);
    format_bytes(s[i]->size, size, sizeof size);
    format_bytes(s[i]->bytes_new, nw, sizeof nw);
    format_bytes(s[i]->used_end, used, sizeof used);
    printf("%-12.12s  %-16s  %-20s  %10s  %10s  %10s  %-15s  %.12s\n", s[i]->id, s[i]->disk, t,
           size, nw, used, s[i]->mode, s[i]->parent[0] ? s[i]->parent : "-");
  }
}

int cmd_snapshots(struct cli *c, int argc, char **argv)
{
  enum { O_JSON = 256, O_DISK };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"disk", required_argument, NULL, O_DISK},
      {"json", no_argument, NULL, O_JSON},
      {NULL, 0, NULL, 0},
  };
  const char *disk = NULL;
  int json = 0, ch;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf("usage: pilotlight -r REPO snapshots [--disk NAME] [--json]\n\n"
             "List snapshots, oldest first: id, disk, time, disk size, bytes new to the\n"
             "repository, the end of the last non-zero block (USED END), mode and parent.\n");
      return 0;
    case O_DISK:
      disk = optarg;
      break;
    case O_JSON:
      json = 1;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind != argc)
    return fail_usage(c, "unexpected argument '%s'", argv[optind]);
  struct repo *r = cli_open_repo(c);
  if (!r)
    return c->repo ? EXIT_FAIL : EXIT_USAGE;
  struct snapshot **s;
  size_t n;
  if (repo_list_snapshots(r, disk, &s, &n) == -1) {
    repo_free(r);
    return fail_lib();
  }
  if (json)
    print_json(s, n);
  else
    print_table(s, n);
  for (size_t i = 0; i < n; i++)
    snapshot_free(s[i]);
  free(s);
  repo_free(r);
  return 0;
}
