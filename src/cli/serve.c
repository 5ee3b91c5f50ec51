/* pilotlight serve: a snapshot as an NBD export, through nbdkit and the
 * pilotlight plugin (src/serve/). This command checks its options and
 * becomes nbdkit; the plugin opens the repository. docs/SERVE.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

#define DEFAULT_LISTEN "127.0.0.1:10809"

/* The plugin beside this binary (a build tree), else where meson installed
 * it. */
static int plugin_path(char *out, size_t cap)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = 0;
      if (snprintf(out, cap, "%.*s/nbdkit-pilotlight-plugin.so", PATH_MAX - 64, exe) < (int)cap &&
          access(out, R_OK) == 0)
        return 0;
    }
  }
  snprintf(out, cap, "%s", PL_NBDKIT_PLUGIN);
  if (access(out, R_OK) == 0)
    return 0;
  fail_msg("the nbdkit plugin %s is missing: reinstall pilotlight (meson install)", out);
  return -1;
}

/* Split ADDR:PORT ([v6]:PORT for IPv6) into addr and port. */
static int split_listen(const char *spec, char *addr, size_t cap, char *port, size_t pcap)
{
  const char *colon = strrchr(spec, ':');
  if (!colon || !colon[1] || colon == spec || strspn(colon + 1, "0123456789") != strlen(colon + 1))
    return -1;
  const char *a = spec, *e = colon;
  if (*a == '[' && e[-1] == ']') {
    a++;
    e--;
  }
  if ((size_t)(e - a) >= cap || strlen(colon + 1) >= pcap)
    return -1;
  memcpy(addr, a, (size_t)(e - a));
  addr[e - a] = 0;
  snprintf(port, pcap, "%s", colon + 1);
  return 0;
}

static int is_loopback(const char *addr)
{
  struct in_addr v4;
  struct in6_addr v6;
  if (strcmp(addr, "localhost") == 0)
    return 1;
  if (inet_pton(AF_INET, addr, &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, addr, &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6);
  return 0;
}

/* A socket left by a server that died (nbdkit leaves it when the plugin
 * fails to start) would stop nbdkit binding: remove it when nothing
 * answers there. A live one is left, and nbdkit says it is in use. */
static void remove_stale_socket(const char *path)
{
  struct stat st;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (lstat(path, &st) == -1 || !S_ISSOCK(st.st_mode) || strlen(path) >= sizeof sa.sun_path)
    return;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1 && errno == ECONNREFUSED)
    unlink(path);
  close(fd);
}

int cmd_serve(struct cli *c, int argc, char **argv)
{
  enum {
    O_SOCKET = 256,
    O_LISTEN,
    O_WRITABLE,
    O_TLS_PSK,
    O_TLS_CERTS,
    O_CACHE,
    O_READAHEAD,
    O_PIDFILE,
    O_STATS,
    O_VERBOSE
  };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"socket", required_argument, NULL, O_SOCKET},
      {"listen", required_argument, NULL, O_LISTEN},
      {"writable", required_argument, NULL, O_WRITABLE},
      {"tls-psk", required_argument, NULL, O_TLS_PSK},
      {"tls-certificates", required_argument, NULL, O_TLS_CERTS},
      {"cache", required_argument, NULL, O_CACHE},
      {"readahead", required_argument, NULL, O_READAHEAD},
      {"pid-file", required_argument, NULL, O_PIDFILE},
      {"stats", required_argument, NULL, O_STATS},
      {"verbose", no_argument, NULL, O_VERBOSE},
      {NULL, 0, NULL, 0},
  };
  const char *sock = NULL, *listen = NULL, *overlay = NULL, *psk = NULL, *certs = NULL;
  const char *cache = NULL, *readahead = NULL, *pidfile = NULL, *stats = NULL;
  int verbose = 0, ch;
  uint64_t v;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf(
          "usage: pilotlight -r REPO serve NAME[@SNAPSHOT] [--socket PATH | --listen ADDR:PORT]\n"
          "                  [--writable OVERLAY] [OPTIONS]\n\n"
          "Export disk NAME at SNAPSHOT (an id, a unique prefix, or latest, the default)\n"
          "over NBD until stopped (Ctrl-C, SIGTERM), through nbdkit and pilotlight's nbdkit\n"
          "plugin. Chunks are fetched when first read, checked against their hashes (a\n"
          "damaged chunk is a read error, never wrong bytes) and kept in a cache; blocks\n"
          "the snapshot holds as zeros are reported as holes. Without --writable the\n"
          "export is read-only. Works from a folder or S3, encrypted or not; the\n"
          "credentials and password come from the usual places (README, Configuration).\n\n"
          "Options:\n"
          "  --socket PATH        listen on a Unix socket (client URI nbd+unix:///?socket=PATH)\n"
          "  --listen ADDR:PORT   listen on TCP (default " DEFAULT_LISTEN "); an address beyond\n"
          "                       loopback needs --tls-psk or --tls-certificates\n"
          "  --writable OVERLAY   accept writes and keep them in the file OVERLAY, created if\n"
          "                       missing; a flushed write survives a crash or kill of serve,\n"
          "                       and serving the same snapshot with the same OVERLAY again\n"
          "                       shows them\n"
          "  --tls-psk FILE       require TLS with the pre-shared keys in FILE (nbdkit-tls(1))\n"
          "  --tls-certificates DIR\n"
          "                       require TLS with the X.509 certificates in DIR\n"
          "  --cache SIZE         chunk cache (default 256M)\n"
          "  --readahead SIZE     how far ahead of a sequential reader to fetch (default 16M)\n"
          "  --pid-file FILE      write nbdkit's PID to FILE once it listens (requests wait\n"
          "                       until the repository is open)\n"
          "  --stats FILE         at exit, write read statistics (JSON) to FILE\n"
          "  --verbose            nbdkit's debug messages\n");
      return 0;
    case O_SOCKET:
      sock = optarg;
      break;
    case O_LISTEN:
      listen = optarg;
      break;
    case O_WRITABLE:
      overlay = optarg;
      break;
    case O_TLS_PSK:
      psk = optarg;
      break;
    case O_TLS_CERTS:
      certs = optarg;
      break;
    case O_CACHE:
    case O_READAHEAD:
      if (parse_size(optarg, &v) == -1 || v == 0)
        return fail_usage(c, "--%s: '%s' is not a size, e.g. 256M",
                          ch == O_CACHE ? "cache" : "readahead", optarg);
      *(ch == O_CACHE ? &cache : &readahead) = optarg;
      break;
    case O_PIDFILE:
      pidfile = optarg;
      break;
    case O_STATS:
      stats = optarg;
      break;
    case O_VERBOSE:
      verbose = 1;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind + 1 != argc)
    return fail_usage(c, "expected NAME[@SNAPSHOT]");
  if (sock && listen)
    return fail_usage(c, "give --socket or --listen, not both");
  if (psk && certs)
    return fail_usage(c, "give --tls-psk or --tls-certificates, not both");
  const char *loc = cli_repo(c);
  if (!loc)
    return EXIT_USAGE;
  char addr[256], port[16];
  if (!sock) {
    if (!listen)
      listen = DEFAULT_LISTEN;
    if (split_listen(listen, addr, sizeof addr, port, sizeof port) == -1)
      return fail_usage(c, "--listen: '%s' is not ADDR:PORT, e.g. 127.0.0.1:10809", listen);
    if (!is_loopback(addr) && !psk && !certs)
      return fail_msg("--listen %s is beyond loopback and would serve the disk in clear: give "
                      "--tls-psk FILE or --tls-certificates DIR, or listen on 127.0.0.1",
                      listen);
  }
  const char *spec = argv[optind];
  const char *at = strchr(spec, '@');
  char disk[256];
  if ((size_t)(at ? at - spec : (ptrdiff_t)strlen(spec)) >= sizeof disk || spec == at || !*spec)
    return fail_usage(c, "'%s' is not NAME[@SNAPSHOT]", spec);
  snprintf(disk, sizeof disk, "%.*s", at ? (int)(at - spec) : (int)strlen(spec), spec);

  if (sock)
    remove_stale_socket(sock);
  char plugin[PATH_MAX];
  if (plugin_path(plugin, sizeof plugin) == -1)
    return EXIT_FAIL;
  /* nbdkit's command line; each key=value is one argument, never a secret
   * (the password comes from the environment or a file or command). */
  char kv[12][PATH_MAX + 32];
  const char *args[48];
  int n = 0, k = 0;
  args[n++] = "nbdkit";
  args[n++] = "--foreground";
  if (verbose)
    args[n++] = "--verbose";
  if (!overlay)
    args[n++] = "--readonly";
  if (sock) {
    args[n++] = "--unix";
    args[n++] = sock;
  } else {
    args[n++] = "--ipaddr";
    args[n++] = addr;
    args[n++] = "--port";
    args[n++] = port;
  }
  if (psk || certs) {
    args[n++] = "--tls=require";
    snprintf(kv[k], sizeof kv[k], psk ? "--tls-psk=%s" : "--tls-certificates=%s",
             psk ? psk : certs);
    args[n++] = kv[k++];
  }
  if (pidfile) {
    args[n++] = "--pidfile";
    args[n++] = pidfile;
  }
  args[n++] = plugin;
#define KV(key, val)                                                                               \
  do {                                                                                             \
    if (val) {                                                                                     \
      snprintf(kv[k], sizeof kv[k], "%s=%s", key, val);                                            \
      args[n++] = kv[k++];                                                                         \
    }                                                                                              \
  } while (0)
  const char *d = disk;
  KV("repository", loc);
  KV("disk", d);
  KV("snapshot", at && at[1] ? at + 1 : NULL);
  KV("overlay", overlay);
  KV("cache", cache);
  KV("readahead", readahead);
  KV("stats", stats);
  KV("password-file", c->password.file);
  KV("password-command", c->password.command);
#undef KV
  args[n] = NULL;
  fprintf(stderr, "pilotlight: serving %s at %s%s (%s); stop with Ctrl-C\n", spec,
          sock             ? "nbd+unix:///?socket="
          : (psk || certs) ? "nbds://"
                           : "nbd://",
          sock ? sock : listen, overlay ? "writable" : "read-only");
  fflush(stderr);
#ifdef PL_ASAN_RUNTIME
  setenv("LD_PRELOAD", PL_ASAN_RUNTIME, 1); /* an ASan build's plugin needs it first */
#endif
  execvp("nbdkit", (char **)args);
  if (errno == ENOENT)
    return fail_msg("nbdkit is not installed: apt-get install nbdkit");
  return fail_msg("cannot run nbdkit: %s", strerror(errno));
}
