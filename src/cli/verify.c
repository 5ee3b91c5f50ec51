/* pilotlight verify: check the repository, and with --read-data every byte. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct verify_out {
  int json;
  int count;
};

static void report(void *opaque, const char *msg)
{
  struct verify_out *o = opaque;
  if (o->json) {
    printf("%s", o->count ? "," : "");
    json_string(stdout, msg);
  } else {
    printf("damaged: %s\n", msg);
  }
  o->count++;
}

/* What to run next: repair acts on the record, then a backup of each
 * damaged disk stores again what the disk still holds, which heals every
 * snapshot that shares those blocks. */
static void advise(struct cli *c, const struct verify_report *rep, int read_data)
{
  fprintf(stderr, "pilotlight: verify found %zu problem(s)", rep->damaged);
  if (rep->hidden) {
    fprintf(stderr,
            "; %zu object(s) are hidden or shadowed in the bucket, so nothing was recorded as "
            "damage: bring them back, then verify again:\n"
            "  pilotlight -r %s repair --undelete   (from the maintenance host)\n"
            "  pilotlight -r %s verify --read-data\n",
            rep->hidden, c->repo, c->repo);
    return;
  }
  if (rep->record[0])
    fprintf(stderr, ", recorded in damage/%.12s: backups now store those chunks again",
            rep->record);
  else if (rep->record_failed)
    fprintf(stderr, " but could not record them (no write access?): run it with write access");
  fprintf(stderr, "; to heal them, run:\n");
  if (!read_data)
    fprintf(stderr, "  pilotlight -r %s verify --read-data\n", c->repo);
  fprintf(stderr, "  pilotlight -r %s repair\n", c->repo);
  for (size_t i = 0; i < rep->disks.len; i++)
    fprintf(stderr, "  pilotlight -r %s backup --disk %s %s\n", c->repo, rep->disks.v[i],
            rep->sources.v[i]);
  fprintf(stderr, "Snapshots whose lost blocks no disk holds any more stay damaged; repair lists "
                  "them. Restore what you need from the others meanwhile.\n");
}

int cmd_verify(struct cli *c, int argc, char **argv)
{
  enum { O_READ = 256, O_SUBSET, O_JSON, O_LIMIT };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"read-data", no_argument, NULL, O_READ},
      {"read-data-subset", required_argument, NULL, O_SUBSET},
      {"json", no_argument, NULL, O_JSON},
      {"limit-download", required_argument, NULL, O_LIMIT},
      {NULL, 0, NULL, 0},
  };
  int read_data = 0, ch;
  unsigned slices = 0, slice = 0;
  struct verify_out o = {0};
  struct verify_report rep;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf("usage: pilotlight -r REPO verify [--read-data | --read-data-subset K/N] [--json]\n"
             "                                [--limit-download RATE]\n\n"
             "Check the repository's structure: every snapshot, block-map page, index entry\n"
             "and pack trailer. With --read-data, also read every pack and check every\n"
             "chunk against its hash. Each damaged or missing object is reported with the\n"
             "snapshots it affects; the exit status is 1 if there is any. What it finds\n"
             "is recorded in the repository (a damage record): backups then store damaged\n"
             "chunks again, and pilotlight repair acts on it. Packs no index lists are\n"
             "reported with their size, as a note.\n\n"
             "Options:\n"
             "  --read-data            read and check every chunk\n"
             "  --read-data-subset K/N read only the K-th of N slices of the packs (K from\n"
             "                         1 to N, N up to 256): runs with K = 1 to N read every\n"
             "                         pack once, e.g. one-seventh a day reads all weekly\n"
             "  --json                 print the report as JSON\n"
             "  --limit-download RATE  read at most RATE bytes per second from the\n"
             "                         repository (with --read-data it reads everything):\n"
             "                         e.g. 10M, or 10M,2M@mon-fri 08:00-18:00 (local time);\n"
             "                         default $PILOTLIGHT_LIMIT_DOWNLOAD, else unlimited\n"
             "                         (README, Bandwidth limits)\n");
      return 0;
    case O_READ:
      read_data = 1;
      slices = 1;
      break;
    case O_SUBSET: {
      char *slash = strchr(optarg, '/');
      uint64_t k, n;
      *(slash ? slash : optarg) = 0;
      if (!slash || parse_size(optarg, &k) == -1 || parse_size(slash + 1, &n) == -1 || n < 1 ||
          n > 256 || k < 1 || k > n)
        return fail_usage(c, "--read-data-subset: give K/N with 1 <= K <= N <= 256, e.g. 3/7");
      slices = (unsigned)n;
      slice = (unsigned)k - 1;
      read_data = 1;
      break;
    }
    case O_JSON:
      o.json = 1;
      break;
    case O_LIMIT:
      if (parse_limit(c, 0, optarg) == -1)
        return EXIT_USAGE;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind != argc)
    return fail_usage(c, "unexpected argument '%s'", argv[optind]);
  c->lock = REPO_LOCK_SHARED_OPTIONAL;
  c->store_reads = 1; /* judge the repository, not the cache */
  struct repo *r = cli_open_repo(c);
  if (!r)
    return c->repo ? EXIT_FAIL : EXIT_USAGE;
  if (o.json)
    printf("{\"problems\":[");
  int rc = repo_verify(r, slices, slice, report, &o, &rep, o.json ? NULL : cli_progress());
  repo_free(r);
  if (rc == -1) {
    if (o.json)
      printf("]}\n");
    verify_report_clear(&rep);
    return fail_lib();
  }
  if (o.json) {
    printf("],\"snapshots\":%zu,\"packs\":%zu,\"chunks_read\":%zu,\"damaged\":%zu,"
           "\"unreferenced_packs\":%zu,\"unreferenced_bytes\":%llu,"
           "\"temp_leftovers\":%zu,\"temp_bytes\":%llu,\"hidden\":%zu,\"record\":",
           rep.snapshots, rep.packs, rep.chunks, rep.damaged, rep.unreferenced_packs,
           (unsigned long long)rep.unreferenced_bytes, rep.temp_leftovers,
           (unsigned long long)rep.temp_bytes, rep.hidden);
    if (rep.record[0])
      printf("\"damage/%s\"", rep.record);
    else
      printf("null");
    printf(",\"damaged_disks\":[");
    for (size_t i = 0; i < rep.disks.len; i++) {
      printf("%s", i ? "," : "");
      json_string(stdout, rep.disks.v[i]);
    }
    printf("]}\n");
  } else {
    if (rep.unreferenced_packs)
      printf("note: %zu pack(s) of %llu bytes are listed by no index object (left by an "
             "interrupted or running backup; the next backup reuses their chunks)\n",
             rep.unreferenced_packs, (unsigned long long)rep.unreferenced_bytes);
    if (rep.temp_leftovers)
      printf("note: %zu temporary leftover(s) of %llu bytes from interrupted writes (pilotlight "
             "prune removes them once older than its --grace)\n",
             rep.temp_leftovers, (unsigned long long)rep.temp_bytes);
    printf("checked %zu snapshots and %zu packs%s: %s\n", rep.snapshots, rep.packs,
           slices == 1 ? " (all data read)"
           : slices    ? " (the data of one slice of the packs read)"
                       : "",
           rep.damaged ? "DAMAGE FOUND" : "no problems found");
  }
  if (rep.damaged)
    advise(c, &rep, read_data);
  verify_report_clear(&rep);
  return rep.damaged ? EXIT_FAIL : 0;
}
