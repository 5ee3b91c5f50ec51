/* pilotlight forget: remove snapshots by a retention policy, or by id,
 * listing every snapshot considered with what happens to it and why. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/forget.h"
#include "core/prune.h"
#include "util/error.h"

static void help(void)
{
  printf(
      "usage: pilotlight -r REPO forget [--disk NAME] POLICY... [--dry-run] [--json]\n"
      "       pilotlight -r REPO forget NAME@ID... [--dry-run] [--json]\n"
      "\n"
      "Remove snapshots that a retention policy does not keep, for each disk on its own\n"
      "(only disk NAME with --disk), or the snapshots named by id. Every snapshot\n"
      "considered is listed with keep or remove and the rules that kept it. Before\n"
      "anything is deleted, a forget record naming every removed snapshot is written\n"
      "(forgotten/ in the repository), so verify can tell a forgotten snapshot from one\n"
      "that vanished. The data is freed later by prune.\n"
      "\n"
      "Policy (as restic's; UTC; a snapshot kept by any rule stays):\n"
      "  --keep-last N            the newest N snapshots\n"
      "  --keep-hourly N          the newest snapshot of each of the last N hours that have one\n"
      "  --keep-daily N           ... of each of the last N days\n"
      "  --keep-weekly N          ... of each of the last N ISO 8601 weeks (Monday to Sunday)\n"
      "  --keep-monthly N         ... of each of the last N months\n"
      "  --keep-yearly N          ... of each of the last N years\n"
      "  --keep-within DURATION   every snapshot within DURATION of the disk's latest snapshot\n"
      "                           (of its latest snapshot, not of now: a disk that stopped\n"
      "                           backing up keeps its last DURATION of history)\n"
      "The latest snapshot of a disk is always kept by a policy. A policy needs at least one\n"
      "rule: forget without a rule or an id removes nothing and exits with status 2.\n"
      "\n"
      "DURATION is NUMBER UNIT pairs: y (years), m or mo (months, as in restic), w (weeks),\n"
      "d (days), h (hours), min (minutes), s (seconds); e.g. 2y5m7d3h, 36h, 90min. Note\n"
      "that 15m is fifteen months; fifteen minutes is 15min. Months and years move the\n"
      "calendar date (March 31 less 1m is March 3, as in restic).\n"
      "\n"
      "NAME@ID removes snapshot ID (a full id or a unique prefix) of disk NAME, even the\n"
      "latest: naming it is the only way to remove a disk's latest snapshot. 'latest' is\n"
      "not accepted there; give the id.\n"
      "\n"
      "Options:\n"
      "  --disk NAME   apply the policy to disk NAME only\n"
      "  --dry-run     list what would be removed, and remove nothing\n"
      "  --json        print the same as one JSON document\n"
      "  --prune       then run prune (see pilotlight prune --help), with its\n"
      "                --max-unused PERCENT and --grace DURATION; with --json, prune's\n"
      "                document follows forget's on its own line\n"
      "\n"
      "Example, for a snapshot every 15 minutes: all of the last 2 days, then one an hour\n"
      "for a week, a day for a month, a week for 3 months, a month for 2 years and a year\n"
      "for 5 (about 370 snapshots per disk):\n"
      "  pilotlight forget --keep-within 2d --keep-hourly 168 --keep-daily 31 \\\n"
      "                    --keep-weekly 13 --keep-monthly 24 --keep-yearly 5\n");
}

struct forget_args {
  const char *disk;
  struct forget_policy p;
  int has_rule;
  int dry_run, json;
  int prune;
  struct prune_opts po;
  char **specs; /* NAME@ID arguments; borrowed from argv */
  int nspecs;
};

/* The value of a --keep-* count: 0 to 1000000000. */
static int parse_count(struct cli *c, const char *opt, const char *arg, unsigned *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(arg, &end, 10);
  if (errno || end == arg || *end || *arg == '-' || v > 1000000000) {
    fail_usage(c, "--%s: '%s' is not a count (0 to 1000000000)", opt, arg);
    return -1;
  }
  *out = (unsigned)v;
  return 0;
}

/* Parse argv into *a. Returns -1 to go on, or the exit status (help, usage). */
static int parse_args(struct cli *c, int argc, char **argv, struct forget_args *a)
{
  enum {
    O_DISK = 256,
    O_LAST,
    O_HOURLY,
    O_DAILY,
    O_WEEKLY,
    O_MONTHLY,
    O_YEARLY,
    O_WITHIN,
    O_DRY_RUN,
    O_JSON,
    O_PRUNE,
    O_MAX_UNUSED,
    O_GRACE
  };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"disk", required_argument, NULL, O_DISK},
      {"keep-last", required_argument, NULL, O_LAST},
      {"keep-hourly", required_argument, NULL, O_HOURLY},
      {"keep-daily", required_argument, NULL, O_DAILY},
      {"keep-weekly", required_argument, NULL, O_WEEKLY},
      {"keep-monthly", required_argument, NULL, O_MONTHLY},
      {"keep-yearly", required_argument, NULL, O_YEARLY},
      {"keep-within", required_argument, NULL, O_WITHIN},
      {"dry-run", no_argument, NULL, O_DRY_RUN},
      {"json", no_argument, NULL, O_JSON},
      {"prune", no_argument, NULL, O_PRUNE},
      {"max-unused", required_argument, NULL, O_MAX_UNUSED},
      {"grace", required_argument, NULL, O_GRACE},
      {NULL, 0, NULL, 0},
  };
  unsigned *counts[] = {&a->p.last,   &a->p.hourly,  &a->p.daily,
                        &a->p.weekly, &a->p.monthly, &a->p.yearly};
  int ch, idx;
  while ((ch = getopt_long(argc, argv, "r:h", opts, &idx)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      help();
      return 0;
    case O_DISK:
      a->disk = optarg;
      break;
    case O_LAST:
    case O_HOURLY:
    case O_DAILY:
    case O_WEEKLY:
    case O_MONTHLY:
    case O_YEARLY:
      if (parse_count(c, opts[idx].name, optarg, counts[ch - O_LAST]) == -1)
        return EXIT_USAGE;
      a->has_rule = 1;
      break;
    case O_WITHIN:
      if (forget_duration_parse(optarg, &a->p.within) == -1)
        return fail_usage(c, "--keep-within: %s", get_error());
      a->has_rule = 1;
      break;
    case O_DRY_RUN:
      a->dry_run = 1;
      break;
    case O_JSON:
      a->json = 1;
      break;
    case O_PRUNE:
      a->prune = 1;
      break;
    case O_MAX_UNUSED:
      if (parse_percent(optarg, &a->po.max_unused) == -1)
        return fail_usage(c, "--max-unused: '%s' is not a percentage from 0 to 100", optarg);
      break;
    case O_GRACE:
      if (parse_duration(optarg, &a->po.grace) == -1)
        return fail_usage(c, "--grace: '%s' is not a duration (e.g. 0, 90min, 24h, 7d)", optarg);
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  a->specs = argv + optind;
  a->nspecs = argc - optind;
  if (a->nspecs && (a->has_rule || a->disk))
    return fail_usage(c, "give either a policy (--keep-*, --disk) or snapshots (NAME@ID), "
                         "not both");
  if (!a->nspecs && (!a->has_rule || forget_policy_empty(&a->p)))
    return fail_usage(c, "no rule given: name at least one --keep-* rule with a non-zero "
                         "value, or snapshots as NAME@ID; nothing was removed");
  for (int i = 0; i < a->nspecs; i++) {
    const char *at = strchr(a->specs[i], '@');
    if (!at || at == a->specs[i] || !at[1])
      return fail_usage(c,
                        "'%s' does not name a snapshot: write NAME@ID (pilotlight snapshots "
                        "lists them)",
                        a->specs[i]);
  }
  return -1;
}

/* The entries to list: all of them for a policy, the named ones for ids. */
static int listed(const struct forget_args *a, const struct forget_entry *e)
{
  return a->nspecs == 0 || e->named;
}

static void print_rules(unsigned keep, int json)
{
  int first = 1;
  for (unsigned i = 0; i < FORGET_RULES; i++) {
    if (!(keep & (1u << i)))
      continue;
    if (json)
      printf("%s\"%s\"", first ? "" : ",", forget_rule_name(i));
    else
      printf("%s%s", first ? "" : ",", forget_rule_name(i));
    first = 0;
  }
  if (first && !json)
    printf("-");
}

static void print_table(const struct forget_args *a, const struct forget_plan *plan)
{
  printf("%-12s  %-16s  %-20s  %-6s  %s\n", "ID", "DISK", "TIME (UTC)", "ACTION",
         a->nspecs ? "WHY" : "KEPT BY");
  for (size_t i = 0; i < plan->e.len; i++) {
    const struct forget_entry *e = &plan->e.v[i];
    char t[32];
    if (!listed(a, e))
      continue;
    format_time(e->s->time, t, sizeof t);
    printf("%-12.12s  %-16s  %-20s  %-6s  ", e->s->id, e->s->disk, t,
           e->remove ? "remove" : "keep");
    if (e->named)
      printf("named%s", e->latest ? " (the latest)" : "");
    else
      print_rules(e->keep, 0);
    printf("\n");
  }
  fflush(stdout);
}

static void print_json(const struct forget_args *a, const struct forget_plan *plan, size_t kept,
                       size_t removed, const char *record)
{
  int first = 1;
  printf("{\"dry_run\":%s,\"snapshots\":[", a->dry_run ? "true" : "false");
  for (size_t i = 0; i < plan->e.len; i++) {
    const struct forget_entry *e = &plan->e.v[i];
    char t[32];
    if (!listed(a, e))
      continue;
    format_time(e->s->time, t, sizeof t);
    printf("%s\n  {\"id\":\"%s\",\"disk\":", first ? "" : ",", e->s->id);
    json_string(stdout, e->s->disk);
    printf(",\"time\":\"%s\",\"time_unix\":%lld,\"action\":\"%s\",\"kept_by\":[", t,
           (long long)e->s->time, e->remove ? "remove" : "keep");
    print_rules(e->keep, 1);
    printf("],\"named\":%s,\"latest\":%s}", e->named ? "true" : "false",
           e->latest ? "true" : "false");
    first = 0;
  }
  printf("%s],\"kept\":%zu,\"removed\":%zu,\"record\":", first ? "" : "\n", kept, removed);
  if (record[0])
    printf("\"forgotten/%s\"}\n", record);
  else
    printf("null}\n");
}

/* Build the plan: the policy over the disk(s), or the named snapshots. */
static struct forget_plan *make_plan(struct repo *r, const struct forget_args *a)
{
  struct forget_plan *plan = forget_plan_new(r, a->nspecs ? NULL : a->disk);
  if (!plan)
    return NULL;
  if (a->nspecs == 0 && forget_plan_policy(plan, &a->p) == -1)
    goto fail;
  for (int i = 0; i < a->nspecs; i++) {
    char *disk = strndup(a->specs[i], (size_t)(strchr(a->specs[i], '@') - a->specs[i]));
    int ok = disk && forget_plan_name(plan, disk, strchr(a->specs[i], '@') + 1);
    free(disk);
    if (!ok)
      goto fail;
  }
  return plan;
fail:
  forget_plan_free(plan);
  return NULL;
}

int cmd_forget(struct cli *c, int argc, char **argv)
{
  struct forget_args a = {0};
  struct forget_plan *plan = NULL;
  char record[2 * HASH_LEN + 1] = "";
  size_t kept = 0, removed = 0, disks = 0;
  const char *last_disk = "";
  int ret = EXIT_FAIL;
  prune_opts_default(&a.po);
  int rc = parse_args(c, argc, argv, &a);
  if (rc != -1)
    return rc;
  c->lock = REPO_LOCK_EXCLUSIVE;
  struct repo *r = cli_open_repo(c);
  if (!r)
    return c->repo ? EXIT_FAIL : EXIT_USAGE;
  plan = make_plan(r, &a);
  if (!plan) {
    fail_lib();
    goto out;
  }
  if (a.disk && plan->e.len == 0) {
    fail_msg("disk %s has no snapshots in this repository: list them with pilotlight snapshots",
             a.disk);
    goto out;
  }
  for (size_t i = 0; i < plan->e.len; i++) {
    const struct forget_entry *e = &plan->e.v[i];
    if (!listed(&a, e))
      continue;
    disks += strcmp(e->s->disk, last_disk) != 0;
    last_disk = e->s->disk;
    if (e->remove)
      removed++;
    else
      kept++;
  }
  if (!a.json)
    print_table(&a, plan);
  if (!a.dry_run && forget_plan_commit(r, plan, record) == -1) {
    fail_lib();
    goto out;
  }
  if (a.json) {
    print_json(&a, plan, kept, removed, record);
  } else {
    for (size_t i = 0; i < plan->e.len; i++) {
      const struct forget_entry *e = &plan->e.v[i];
      if (e->named && e->latest)
        printf("note: %.12s was the latest snapshot of disk %s; it %s because you named it "
               "(the next backup of %s takes its newest remaining snapshot as the parent)\n",
               e->s->id, e->s->disk, a.dry_run ? "would be removed" : "is removed", e->s->disk);
    }
    printf("%zu snapshot%s of %zu disk%s: %zu kept, %zu %s", kept + removed,
           kept + removed == 1 ? "" : "s", disks, disks == 1 ? "" : "s", kept, removed,
           a.dry_run ? "to remove (dry run: nothing was removed)" : "removed");
    if (record[0])
      printf(" (recorded in forgotten/%.12s)", record);
    printf("\n");
  }
  ret = 0;
  if (a.prune) {
    a.po.dry_run = a.dry_run;
    fflush(stdout);
    ret = cli_prune_run(r, &a.po, a.json, 0);
  }
out:
  forget_plan_free(plan);
  repo_free(r);
  return ret;
}
