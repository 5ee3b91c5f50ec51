/* pilotlight prune: delete what no snapshot references, rewrite sparse
 * packs, merge index objects and remove old temporary leftovers. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "core/prune.h"

struct prune_out {
  int json, verbose, count;
};

static void report(void *opaque, const char *line)
{
  struct prune_out *o = opaque;
  if (o->json) {
    printf("%s", o->count ? "," : "");
    json_string(stdout, line);
  } else if (o->verbose) {
    printf("%s\n", line);
  }
  o->count++;
}

static void help(void)
{
  printf("usage: pilotlight -r REPO prune [--dry-run] [--max-unused PERCENT] [--grace DURATION]\n"
         "                                [--verbose] [--json] [--limit-upload RATE]\n\n"
         "Delete the packs no snapshot references, rewrite packs with unused bytes while\n"
         "they exceed --max-unused percent of the repository (default %d; the sparsest\n"
         "packs first, as restic does), merge the index objects into few large ones, and\n"
         "remove temporary leftovers of interrupted writes (packs no index lists, *.tmp.*\n"
         "files, incomplete S3 multipart uploads) older than --grace (default 24h; s, min,\n"
         "h, d or w). --grace 0 frees everything at once: use it only when no backup runs\n"
         "anywhere. Nothing is deleted while any snapshot or index object cannot be read.\n"
         "--dry-run changes nothing and lists what would be done; --verbose lists it too.\n\n"
         "In an Object Lock repository (init --object-lock) deleting only hides an object:\n"
         "its bytes stay until their retention ends, and a later prune deletes them. prune\n"
         "also extends the retention of every object kept snapshots need to now plus the\n"
         "lock days; run it at least daily so the newest snapshots stay protected that\n"
         "long. It refuses while a snapshot is hidden without a forget record (repair\n"
         "--undelete first).\n\n"
         "--limit-upload RATE holds the rewritten packs and index objects to RATE bytes\n"
         "per second, e.g. 10M, or 10M,2M@mon-fri 08:00-18:00 (local time); default\n"
         "$PILOTLIGHT_LIMIT_UPLOAD, else unlimited (README, Bandwidth limits).\n",
         PRUNE_DEFAULT_MAX_UNUSED);
}

static void print_result(const struct prune_out *o, const struct prune_result *res, int dry)
{
  char before[32], after[32], ub[32], ua[32], lb[32];
  if (o->json) {
    printf("],\"dry_run\":%s,\"snapshots\":%zu,\"pages\":%zu,\"chunks\":%zu,\"chunks_live\":%zu,"
           "\"packs_before\":%zu,\"packs_after\":%zu,\"packs_deleted\":%zu,"
           "\"packs_rewritten\":%zu,\"packs_written\":%zu,\"index_before\":%zu,"
           "\"index_written\":%zu,\"bytes_before\":%llu,\"bytes_after\":%llu,"
           "\"unused_before\":%llu,\"unused_after\":%llu,\"bytes_deleted\":%llu,"
           "\"bytes_written\":%llu,\"leftover_packs\":%zu,\"leftover_temp\":%zu,"
           "\"leftover_bytes\":%llu,\"leftovers_kept\":%zu,\"lock_renewed\":%zu,"
           "\"lock_purged\":%zu,\"lock_purged_bytes\":%llu,\"lock_waiting\":%zu,"
           "\"lock_waiting_bytes\":%llu,\"lock_waiting_until\":%lld}\n",
           dry ? "true" : "false", res->snapshots, res->pages, res->chunks, res->chunks_live,
           res->packs_before, res->packs_after, res->packs_deleted, res->packs_rewritten,
           res->packs_written, res->index_before, res->index_written,
           (unsigned long long)res->bytes_before, (unsigned long long)res->bytes_after,
           (unsigned long long)res->unused_before, (unsigned long long)res->unused_after,
           (unsigned long long)res->bytes_deleted, (unsigned long long)res->bytes_written,
           res->leftover_packs, res->leftover_temp, (unsigned long long)res->leftover_bytes,
           res->leftovers_kept, res->lock_renewed, res->lock_purged,
           (unsigned long long)res->lock_purged_bytes, res->lock_waiting,
           (unsigned long long)res->lock_waiting_bytes, (long long)res->lock_waiting_until);
    return;
  }
  format_bytes(res->bytes_before, before, sizeof before);
  format_bytes(res->bytes_after, after, sizeof after);
  format_bytes(res->unused_before, ub, sizeof ub);
  format_bytes(res->unused_after, ua, sizeof ua);
  format_bytes(res->leftover_bytes, lb, sizeof lb);
  const char *w = dry ? "would be " : "";
  printf("%s%zu snapshots marked %zu of %zu chunks live (%zu block-map pages read)\n",
         dry ? "dry run: " : "", res->snapshots, res->chunks_live, res->chunks, res->pages);
  printf("packs: %zu %sdeleted, %zu %srewritten into %s%zu new; %zu -> %zu\n", res->packs_deleted,
         w, res->packs_rewritten, w, dry ? "about " : "", res->packs_written, res->packs_before,
         res->packs_after);
  if (res->index_written || res->packs_deleted || res->packs_rewritten)
    printf("index objects: %zu %smerged into %zu\n", res->index_before, w, res->index_written);
  else
    printf("index objects: %zu, unchanged\n", res->index_before);
  printf("stored bytes: %s -> %s%s (unused %s -> %s)\n", before, dry ? "about " : "", after, ub,
         ua);
  printf("leftovers: %zu unindexed packs and %zu temporary %sremoved (%s); %zu younger than the "
         "grace kept\n",
         res->leftover_packs, res->leftover_temp, w, lb, res->leftovers_kept);
  if (res->lock_renewed || res->lock_purged || res->lock_waiting) {
    char pb[32], wb[32], date[32];
    format_bytes(res->lock_purged_bytes, pb, sizeof pb);
    format_bytes(res->lock_waiting_bytes, wb, sizeof wb);
    format_time(res->lock_waiting_until, date, sizeof date);
    printf("object lock: retention of %zu objects %srenewed; %zu hidden versions %sdeleted (%s)",
           res->lock_renewed, w, res->lock_purged, w, pb);
    if (res->lock_waiting)
      printf("; %zu (%s) still retained, deletable after %s: run prune again then",
             res->lock_waiting, wb, date);
    printf("\n");
  }
}

int cmd_prune(struct cli *c, int argc, char **argv)
{
  enum { O_DRY = 256, O_MAX, O_GRACE, O_JSON, O_LIMIT };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"dry-run", no_argument, NULL, O_DRY},
      {"max-unused", required_argument, NULL, O_MAX},
      {"grace", required_argument, NULL, O_GRACE},
      {"verbose", no_argument, NULL, 'v'},
      {"json", no_argument, NULL, O_JSON},
      {"limit-upload", required_argument, NULL, O_LIMIT},
      {NULL, 0, NULL, 0},
  };
  struct prune_opts po;
  struct prune_out o = {0};
  int ch;
  prune_opts_default(&po);
  while ((ch = getopt_long(argc, argv, "r:hv", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      help();
      return 0;
    case O_DRY:
      po.dry_run = 1;
      break;
    case O_MAX:
      if (parse_percent(optarg, &po.max_unused) == -1)
        return fail_usage(c, "--max-unused: '%s' is not a percentage from 0 to 100", optarg);
      break;
    case O_GRACE:
      if (parse_duration(optarg, &po.grace) == -1)
        return fail_usage(c, "--grace: '%s' is not a duration (e.g. 0, 90min, 24h, 7d)", optarg);
      break;
    case 'v':
      o.verbose = 1;
      break;
    case O_JSON:
      o.json = 1;
      break;
    case O_LIMIT:
      if (parse_limit(c, 1, optarg) == -1)
        return EXIT_USAGE;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind != argc)
    return fail_usage(c, "unexpected argument '%s'", argv[optind]);
  c->lock = REPO_LOCK_EXCLUSIVE;
  c->store_reads = 1; /* what it deletes follows the repository, not the cache */
  struct repo *r = cli_open_repo(c);
  if (!r)
    return c->repo ? EXIT_FAIL : EXIT_USAGE;
  int rc = cli_prune_run(r, &po, o.json, o.verbose);
  repo_free(r);
  return rc;
}

int cli_prune_run(struct repo *r, const struct prune_opts *po, int json, int verbose)
{
  struct prune_out o = {.json = json, .verbose = verbose || po->dry_run};
  struct prune_result res;
  struct prune_opts run = *po;
  run.report = report;
  run.opaque = &o;
  run.progress = json ? NULL : cli_progress();
  if (o.json)
    printf("{\"actions\":[");
  int rc = repo_prune(r, &run, &res);
  if (rc == -1) {
    if (o.json)
      printf("]}\n");
    return fail_lib();
  }
  print_result(&o, &res, po->dry_run);
  return 0;
}
