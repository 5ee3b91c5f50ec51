/* pilotlight export: write a snapshot as an image file for cloud import or
 * another hypervisor (raw, stream-optimized VMDK, dynamic or fixed VHD). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "sink/image-export.h"
#include "sink/image-writer.h"

/* The format a file name's extension suggests, or -1. */
static int format_from_name(const char *path, enum image_format *f)
{
  const char *dot = strrchr(path, '.');
  if (dot == NULL || strchr(dot, '/') != NULL)
    return -1;
  if (strcmp(dot, ".vmdk") == 0)
    *f = IMAGE_VMDK;
  else if (strcmp(dot, ".vhd") == 0)
    *f = IMAGE_VHD;
  else if (strcmp(dot, ".raw") == 0 || strcmp(dot, ".img") == 0)
    *f = IMAGE_RAW;
  else
    return -1;
  return 0;
}

static void help(void)
{
  printf("usage: pilotlight -r REPO export NAME[@SNAPSHOT] OUT [--format FORMAT] [--force]\n\n"
         "Write disk NAME at SNAPSHOT (an id, a unique id prefix, or latest, the default)\n"
         "to the image file OUT. OUT appears only once it is complete (until then it is\n"
         "OUT.pilotlight-part.PID); an existing OUT is replaced only with --force. OUT -\n"
         "streams to standard output (raw and vmdk only: VHD needs seeking). Formats:\n"
         "  raw        a sparse raw image\n"
         "  vmdk       stream-optimized VMDK (compressed, only allocated data): what\n"
         "             AWS import-image / import-snapshot and VMware accept\n"
         "  vhd        dynamic VHD (Hyper-V, AWS)\n"
         "  vhd-fixed  fixed VHD (Azure)\n"
         "Without --format, the extension of OUT decides (.vmdk, .vhd, .raw, .img); an\n"
         "extension that names another format than --format is refused.\n\n"
         "Options:\n"
         "  --format FORMAT  raw, vmdk, vhd or vhd-fixed\n"
         "  --force          replace an existing OUT\n"
         "  --threads N      compression threads (default: the number of CPUs)\n"
         "  --json           print the result as JSON\n"
         "  --limit-download RATE\n"
         "                   read at most RATE bytes per second from the repository, all\n"
         "                   threads together: e.g. 10M, or 10M,2M@mon-fri 08:00-18:00\n"
         "                   (local time); default $PILOTLIGHT_LIMIT_DOWNLOAD, else\n"
         "                   unlimited (README, Bandwidth limits)\n");
}

/* Settle the format from --format (have_fmt: *fmt is set) and OUT's
 * extension. Returns -1 to go on, or the exit status of a usage error. */
static int choose_format(struct cli *c, const char *out_path, int have_fmt, enum image_format *fmt)
{
  int to_stdout = strcmp(out_path, "-") == 0;
  enum image_format named;
  int has_ext = !to_stdout && format_from_name(out_path, &named) == 0;
  if (!have_fmt && to_stdout)
    return fail_usage(c, "export to standard output needs --format vmdk or raw");
  if (!have_fmt && !has_ext)
    return fail_usage(c, "cannot tell the format from '%s': add --format raw|vmdk|vhd|vhd-fixed",
                      out_path);
  if (!have_fmt)
    *fmt = named;
  /* .vhd names both VHD kinds. */
  if (have_fmt && has_ext && named != *fmt && !(named == IMAGE_VHD && *fmt == IMAGE_VHD_FIXED))
    return fail_usage(c, "'%s' names a %s image but --format is %s: rename OUT or change --format",
                      out_path, image_format_name(named), image_format_name(*fmt));
  return -1;
}

/* The summary, on rep (standard error when standard output carries the
 * image). */
static void print_result(FILE *rep, int json, const struct snapshot *s, enum image_format fmt,
                         const char *out_path, const struct image_export_stats *st, double secs)
{
  if (json) {
    fprintf(rep, "{\"snapshot\":\"%s\",\"disk\":", s->id);
    json_string(rep, s->disk);
    fprintf(rep, ",\"format\":\"%s\",\"output\":", image_format_name(fmt));
    json_string(rep, out_path);
    fprintf(rep, ",\"size\":%llu,\"bytes_read\":%llu,\"file_size\":%llu,\"seconds\":%.3f}\n",
            (unsigned long long)s->size, (unsigned long long)st->bytes_read,
            (unsigned long long)st->file_size, secs);
  } else {
    char fs[32];
    format_bytes(st->file_size, fs, sizeof fs);
    fprintf(rep, "exported snapshot %.12s of disk %s to %s (%s, %s) in %.2f s\n", s->id, s->disk,
            out_path, image_format_name(fmt), fs, secs);
  }
}

int cmd_export(struct cli *c, int argc, char **argv)
{
  enum { O_FORMAT = 256, O_THREADS, O_JSON, O_FORCE, O_LIMIT };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"format", required_argument, NULL, O_FORMAT},
      {"threads", required_argument, NULL, O_THREADS},
      {"json", no_argument, NULL, O_JSON},
      {"force", no_argument, NULL, O_FORCE},
      {"limit-download", required_argument, NULL, O_LIMIT},
      {NULL, 0, NULL, 0},
  };
  enum image_format fmt = IMAGE_RAW;
  int have_fmt = 0, json = 0, force = 0, ch, ret = EXIT_FAIL;
  int threads = 0;
  struct repo *r = NULL;
  struct snapshot *s = NULL;
  struct image_export_stats st = {0};
  struct timespec t0, t1;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      help();
      return 0;
    case O_FORMAT:
      if (image_format_parse(optarg, &fmt) == -1)
        return fail_usage(c, "--format: '%s' is not raw, vmdk, vhd or vhd-fixed", optarg);
      have_fmt = 1;
      break;
    case O_THREADS:
      if (parse_threads(c, optarg, &threads) == -1)
        return EXIT_USAGE;
      break;
    case O_JSON:
      json = 1;
      break;
    case O_FORCE:
      force = 1;
      break;
    case O_LIMIT:
      if (parse_limit(c, 0, optarg) == -1)
        return EXIT_USAGE;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind + 2 != argc)
    return fail_usage(c, "expected NAME[@SNAPSHOT] OUT");
  const char *out_path = argv[optind + 1];
  int to_stdout = strcmp(out_path, "-") == 0;
  int rc = choose_format(c, out_path, have_fmt, &fmt);
  if (rc != -1)
    return rc;
  if (!cli_repo(c))
    return EXIT_USAGE;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (cli_open_snapshot(c, argv[optind], threads, &r, &s) == -1)
    goto out;
  struct image_export_opts eo = {.format = fmt,
                                 .path = out_path,
                                 .force = force,
                                 .threads = threads,
                                 .cancel = &cli_cancel,
                                 .progress = cli_progress()};
  cli_catch_signals();
  if (image_export(r, s, &eo, &st) == -1) {
    char what[600];
    snprintf(what, sizeof what, "export of %s@%.12s to %s", s->disk, s->id, out_path);
    ret = fail_interrupted(what, to_stdout ? "the output is incomplete; rerun the export"
                                           : "nothing was left under that name; rerun the export");
    goto out;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  print_result(to_stdout ? stderr : stdout, json, s, fmt, out_path, &st, secs);
  ret = 0;
out:
  snapshot_free(s);
  repo_free(r);
  return ret;
}
