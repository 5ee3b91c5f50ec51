/* pilotlight verify: check the repository, and with --read-data every byte. */
#include <getopt.h>
#include <stdio.h>

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

int cmd_verify(struct cli *c, int argc, char **argv)
{
  enum { O_READ = 256, O_JSON };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"read-data", no_argument, NULL, O_READ},
      {"json", no_argument, NULL, O_JSON},
      {NULL, 0, NULL, 0},
  };
  int read_data = 0, ch;
  struct verify_out o = {0};
  struct verify_report rep;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf("usage: pilotlight -r REPO verify [--read-data] [--json]\n\n"
             "Check the repository's structure: every snapshot, block-map page, index entry\n"
             "and pack trailer. With --read-data, also read every pack and check every\n"
             "chunk against its hash. Each damaged or missing object is reported with the\n"
             "snapshots it affects; the exit status is 1 if there is any.\n");
      return 0;
    case O_READ:
      read_data = 1;
      break;
    case O_JSON:
      o.json = 1;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind != argc)
    return fail_usage(c, "unexpected argument '%s'", argv[optind]);
  c->lock = REPO_LOCK_SHARED_OPTIONAL;
  struct repo *r = cli_open_repo(c);
  if (!r)
    return c->repo ? EXIT_FAIL : EXIT_USAGE;
  if (o.json)
    printf("{\"problems\":[");
  int rc = repo_verify(r, read_data, report, &o, &rep);
  repo_free(r);
  if (rc == -1) {
    if (o.json)
      printf("]}\n");
    return fail_lib();
  }
  if (o.json) {
    printf("],\"snapshots\":%zu,\"packs\":%zu,\"chunks_read\":%zu,\"damaged\":%zu}\n",
           rep.snapshots, rep.packs, rep.chunks, rep.damaged);
  } else {
    printf("checked %zu snapshots and %zu packs%s: %s\n", rep.snapshots, rep.packs,
           read_data ? " (all data read)" : "", rep.damaged ? "DAMAGE FOUND" : "no problems found");
  }
  if (rep.damaged)
    fprintf(stderr,
            "pilotlight: verify found %zu problem(s); restore what you can from "
            "unaffected snapshots and take a new full backup (--full)\n",
            rep.damaged);
  return rep.damaged ? EXIT_FAIL : 0;
}
