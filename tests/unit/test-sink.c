/* Unit tests for src/sink: format names, the zero check, the replica state
 * parser (accepts what a sync writes, rejects damage), the sink's new-file
 * and existing-file rules, and blockmap_compare. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "check.h"
#include "core/blockmap-compare.h"
#include "sink/image-writer.h"
#include "sink/replica.h"
#include "sink/sink.h"
#include "util/hash.h"

/* A 3-block disk in memory (block size 4096, the last block short). */
static uint8_t disk[4096 * 2 + 100];

static int read_mem(void *opaque, void *buf, size_t len, uint64_t off)
{
  memcpy(buf, (const uint8_t *)opaque + off, len);
  return 0;
}

static void test_compare(void)
{
  uint8_t h[3][HASH_LEN];
  struct blockmap m = {.nblocks = 3, .block_size = 4096, .size = sizeof disk, .h = h};
  memset(disk, 0, sizeof disk);
  memset(disk + 4096, 7, 4096);
  memset(h, 0, sizeof h);
  sha256(disk + 4096, 4096, h[1]);
  struct blockmap_compare_opts o = {
      .limit = sizeof disk, .threads = 3, .read = read_mem, .opaque = disk};
  struct blockmap_compare_result r;
  check_int(blockmap_compare(&m, &o, &r), ==, 0);
  check_int(r.mismatches, ==, 0);
  disk[sizeof disk - 1] = 1; /* a zero block that is not */
  disk[4096] = 8;
  check_int(blockmap_compare(&m, &o, &r), ==, 0);
  check_int(r.mismatches, ==, 2);
  check_int(r.first, ==, 1);
}

static void test_sink(void)
{
  char dir[] = "/tmp/test-sink.XXXXXX", path[64], part[96];
  check(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/t", dir);
  snprintf(part, sizeof part, "%s.pilotlight-part.%ld", path, (long)getpid());
  struct sink *s = sink_open(path, 0);
  check(s != NULL && s->created && s->fresh);
  check(access(part, F_OK) == 0 && access(path, F_OK) != 0);
  sink_free(s); /* uncommitted: the temporary goes */
  check(access(part, F_OK) != 0 && access(path, F_OK) != 0);
  s = sink_open(path, 0);
  check(sink_set_size(s, 8192, 1) == 0 && sink_pwrite(s, "abc", 3, 4096) == 0);
  check_int(sink_commit(s), ==, 0);
  sink_free(s);
  check(access(path, F_OK) == 0 && access(part, F_OK) != 0);
  check(sink_open(path, 0) == NULL); /* exists, no --force */
  s = sink_open(path, SINK_EXISTING);
  check(s != NULL && !s->created && s->size == 8192);
  check_int(sink_mark_incomplete(s, "vm@123"), ==, 0);
  sink_free(s); /* not committed: the marker stays */
  check(sink_open(path, SINK_EXISTING) == NULL);
  check(strstr(get_error(), "incomplete: an earlier restore of vm@123") != NULL);
  s = sink_open(path, SINK_EXISTING | SINK_IGNORE_MARK);
  check(s != NULL && sink_commit(s) == 0);
  sink_free(s);
  char *mark = sink_marker_path(path, 0);
  check(access(mark, F_OK) != 0);
  free(mark);
  unlink(path);
  rmdir(dir);
}

static const char good[] =
    "pilotlight-replica-state 1\n"
    "repository fd7a3ec8fdb05eca6ed673578fbaa04f\n"
    "disk vm-1\n"
    "status syncing\n"
    "applied 558ec96a012bb7ca822e87f6d07c590b94142af10029be037b9b5de908b8e6fc\n"
    "applying 33ba38f013ae0a3755a2b334a2c8e63f2597be6b6cfc293a6b1dec6b1172e05f\n"
    "size 73429581\n"
    "fingerprint file:1:2:3.000000004:5.000000006\n";

static int parses(const char *text)
{
  struct replica_state st;
  if (replica_state_parse(text, strlen(text), &st) == -1)
    return 0;
  replica_state_clear(&st);
  return 1;
}

int main(void)
{
  enum image_format f;
  check_int(image_format_parse("vmdk", &f), ==, 0);
  check_int(f, ==, IMAGE_VMDK);
  check_int(image_format_parse("vhd-fixed", &f), ==, 0);
  check_int(f, ==, IMAGE_VHD_FIXED);
  check_int(image_format_parse("qcow2", &f), ==, -1);
  check_str(image_format_name(IMAGE_VHD), "vhd");

  static unsigned char buf[100000];
  check(is_zero(buf, sizeof buf));
  check(is_zero(buf, 0));
  buf[99999] = 1;
  check(!is_zero(buf, sizeof buf));
  check(is_zero(buf, 99999));
  buf[3] = 1;
  check(!is_zero(buf, 5));

  struct replica_state st;
  check_int(replica_state_parse(good, strlen(good), &st), ==, 0);
  check_str(st.disk, "vm-1");
  check_int(st.syncing, ==, 1);
  check_int(st.size, ==, 73429581);
  check_str(st.applied, "558ec96a012bb7ca822e87f6d07c590b94142af10029be037b9b5de908b8e6fc");
  check_str(st.fingerprint, "file:1:2:3.000000004:5.000000006");
  replica_state_clear(&st);

  check(!parses(""));
  check(!parses("pilotlight-replica-state 2\nrepository x\ndisk d\nstatus clean\n"));
  check(parses("pilotlight-replica-state 1\nrepository x\ndisk d\nstatus clean\nnew-key 1\n"));
  check(!parses("pilotlight-replica-state 1\nrepository x\nstatus clean\n")); /* no disk */
  check(!parses("pilotlight-replica-state 1\nrepository x\ndisk d\nstatus maybe\n"));
  check(!parses("pilotlight-replica-state 1\nrepository x\ndisk d\nstatus clean\napplied 12\n"));
  check(!parses("pilotlight-replica-state 1\nrepository x\ndisk d\nstatus clean\nsize -1\n"));
  check(!parses("pilotlight-replica-state 1\nrepository x\ndisk d\nstatus clean\nsize "
                "99999999999999999999999\n"));
  char nul[] = "pilotlight-replica-state 1\nrepository x\ndisk d\0\nstatus clean\n";
  struct replica_state st2;
  check_int(replica_state_parse(nul, sizeof nul - 1, &st2), ==, -1);
  test_compare();
  test_sink();
  return check_summary();
}
