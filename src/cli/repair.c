/* pilotlight repair: act on what verify recorded, then say which snapshots
 * stay damaged and which backups heal them. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/repair.h"
#include "core/versions.h"
#include "env/settings.h"

struct repair_out {
  int json;
  int nactions, nlost;
  char disks[16][130]; /* the first disks that stay damaged, for the advice */
  char sources[16][512];
  int ndisks;
};

static void on_action(void *opaque, const char *msg)
{
  struct repair_out *o = opaque;
  if (o->json) {
    printf("%s", o->nactions ? "," : "");
    json_string(stdout, msg);
  } else {
    printf("%s\n", msg);
  }
  o->nactions++;
}

static void on_lost(void *opaque, const struct snapshot *s, uint64_t blocks, const char *ranges)
{
  struct repair_out *o = opaque;
  int known = 0;
  for (int i = 0; i < o->ndisks && !known; i++)
    known = strcmp(o->disks[i], s->disk) == 0;
  if (!known && o->ndisks < 16) {
    snprintf(o->disks[o->ndisks], sizeof o->disks[0], "%s", s->disk);
    snprintf(o->sources[o->ndisks++], sizeof o->sources[0], "%s", s->source);
  }
  if (o->json) {
    if (!o->nlost)
      printf("],\"stay_damaged\":[");
    printf("%s{\"snapshot\":\"%s\",\"disk\":", o->nlost ? "," : "", s->id);
    json_string(stdout, s->disk);
    printf(",\"blocks\":%llu,\"ranges\":", (unsigned long long)blocks);
    json_string(stdout, ranges);
    printf("}");
  } else {
    printf("snapshot %.12s of disk %s stays damaged: %llu block(s) lost, bytes (offset+length) "
           "%s\n",
           s->id, s->disk, (unsigned long long)blocks, ranges);
  }
  o->nlost++;
}

static void on_say(void *opaque, const char *msg)
{
  on_action(opaque, msg);
}

static void add_result(struct undelete_result *sum, const struct undelete_result *u)
{
  sum->hidden += u->hidden;
  sum->shadowed += u->shadowed;
  sum->restored += u->restored;
  sum->unrestorable += u->unrestorable;
  sum->waiting += u->waiting;
}

/* repair --undelete: the config and keys at the store, then the rest in the
 * opened repository. */
static int undelete(struct cli *c, int dry, struct repair_out *o)
{
  struct cli_settings settings;
  struct undelete_result sum = {0}, u;
  const char *loc = cli_repo(c);
  if (!loc)
    return EXIT_USAGE;
  if (o->json)
    printf("{\"dry_run\":%s,\"actions\":[", dry ? "true" : "false");
  int rc = cli_settings_load(&settings, loc);
  if (rc == 0) {
    rc = repo_undelete_base(loc, &settings.repo, dry, on_say, o, &u);
    add_result(&sum, &u);
  }
  cli_settings_free(&settings);
  /* With the config or keys still to come back (dry run), the rest cannot
   * be judged yet. */
  int rest = rc == 0 && !(dry && u.restored);
  if (rc == 0 && !rest)
    on_action(o, "the rest of the repository is checked once the config and keys are back: run "
                 "repair --undelete without --dry-run");
  if (rest) {
    struct repo *r = cli_open_repo(c);
    if (!r) {
      if (o->json)
        printf("]}\n");
      return EXIT_FAIL; /* cli_open_repo said why */
    }
    if (!repo_versioned(r)) {
      set_error_code(EINVAL,
                     "%s is not an Object Lock repository (init --object-lock): it has no "
                     "hidden versions to bring back",
                     loc);
      rc = -1;
    } else {
      rc = repo_undelete(r, dry, 0, on_say, o, &u);
      add_result(&sum, &u);
    }
    repo_free(r);
  }
  if (rc == -1) {
    if (o->json)
      printf("]}\n");
    return fail_lib();
  }
  if (o->json)
    printf("],\"hidden\":%zu,\"shadowed\":%zu,\"restored\":%zu,\"unrestorable\":%zu,"
           "\"waiting\":%zu}\n",
           sum.hidden, sum.shadowed, sum.restored, sum.unrestorable, sum.waiting);
  else
    printf("%s%zu hidden and %zu shadowed object(s) found, %zu %srestored, %zu cannot be; %zu "
           "hidden by forget or prune left to their retention\n",
           dry ? "(dry run) " : "", sum.hidden, sum.shadowed, sum.restored, dry ? "would be " : "",
           sum.unrestorable, sum.waiting);
  return sum.unrestorable ? EXIT_FAIL : 0;
}

int cmd_repair(struct cli *c, int argc, char **argv)
{
  enum { O_DRY = 256, O_JSON, O_UNDELETE, O_LIMIT };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"dry-run", no_argument, NULL, O_DRY},
      {"json", no_argument, NULL, O_JSON},
      {"undelete", no_argument, NULL, O_UNDELETE},
      {"limit-upload", required_argument, NULL, O_LIMIT},
      {NULL, 0, NULL, 0},
  };
  int dry = 0, ch, undel = 0;
  struct repair_out o = {.json = 0};
  struct repair_report rep;
  struct repair_ops ops = {on_action, on_lost, &o};
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf("usage: pilotlight -r REPO repair [--undelete] [--dry-run] [--json]\n"
             "                                 [--limit-upload RATE]\n\n"
             "Act on the damage that verify recorded: copy the readable chunks of damaged\n"
             "packs into new packs, drop damaged and lost chunks from the index, rebuild\n"
             "damaged index objects from pack trailers, and move damaged packs, index and\n"
             "snapshot objects to quarantine/. Then list the snapshots that stay damaged,\n"
             "with the byte ranges lost: the next backup of their disks stores again what\n"
             "the disks still hold, and heals every snapshot that shares those blocks.\n"
             "Run pilotlight verify --read-data first. With --dry-run, nothing is written.\n\n"
             "  --undelete  (an Object Lock repository, from the maintenance host) instead,\n"
             "              bring back every object hidden by a delete marker or shadowed by\n"
             "              a newer version: the last version that matches its name (the\n"
             "              first one, for the config) becomes current again. Snapshots a\n"
             "              forget record lists stay hidden; key objects come back only if\n"
             "              none is left; an index object only with all its packs.\n"
             "  --limit-upload RATE\n"
             "              write the new packs and index objects at most at RATE bytes\n"
             "              per second, all threads together: e.g. 10M, or 10M,2M@mon-fri\n"
             "              08:00-18:00 (local time); default $PILOTLIGHT_LIMIT_UPLOAD,\n"
             "              else unlimited (README, Bandwidth limits)\n");
      return 0;
    case O_DRY:
      dry = 1;
      break;
    case O_JSON:
      o.json = 1;
      break;
    case O_UNDELETE:
      undel = 1;
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
  c->store_reads = 1; /* judge the repository, not the cache */
  if (undel)
    return undelete(c, dry, &o);
  struct repo *r = cli_open_repo(c);
  if (!r)
    return c->repo ? EXIT_FAIL : EXIT_USAGE;
  if (o.json)
    printf("{\"dry_run\":%s,\"actions\":[", dry ? "true" : "false");
  int rc = repo_repair(r, dry, &ops, &rep);
  repo_free(r);
  if (o.json && !o.nlost)
    printf("],\"stay_damaged\":[");
  if (rc == -1) {
    if (o.json)
      printf("]}\n");
    return fail_lib();
  }
  if (o.json) {
    printf("],\"chunks_rewritten\":%zu,\"chunks_dropped\":%zu,\"packs_quarantined\":%zu,"
           "\"index_written\":%zu,\"index_deleted\":%zu,\"index_quarantined\":%zu,"
           "\"snapshots_quarantined\":%zu,\"records_deleted\":%zu}\n",
           rep.chunks_rewritten, rep.chunks_dropped, rep.packs_quarantined, rep.index_written,
           rep.index_deleted, rep.index_quarantined, rep.snapshots_quarantined,
           rep.records_deleted);
    return 0;
  }
  if (!o.nactions)
    printf("nothing to repair: no damage is recorded (run pilotlight verify --read-data to "
           "look for it)\n");
  printf("%s%zu chunk(s) rewritten, %zu dropped; %zu pack(s), %zu index and %zu snapshot "
         "object(s) moved to quarantine/; %zu damage record(s) handled\n",
         dry ? "(dry run) " : "", rep.chunks_rewritten, rep.chunks_dropped, rep.packs_quarantined,
         rep.index_quarantined, rep.snapshots_quarantined, rep.records_deleted);
  if (o.nlost) {
    printf("%d snapshot(s) stay damaged. The next backup of their disks stores again what the "
           "disks still hold and heals every snapshot whose lost blocks are unchanged:\n",
           o.nlost);
    for (int i = 0; i < o.ndisks; i++)
      printf("  pilotlight -r %s backup --disk %s %s\n", c->repo, o.disks[i], o.sources[i]);
  } else {
    printf("no snapshot stays damaged\n");
  }
  return 0;
}
