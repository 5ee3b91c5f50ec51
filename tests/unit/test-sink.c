/* Unit tests for src/target: format names, the zero check, and the replica
 * state parser (accepts what a sync writes, rejects damage). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sink/image-writer.h"
#include "sink/replica.h"
#include "util/hash.h"

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
  return check_summary();
}
