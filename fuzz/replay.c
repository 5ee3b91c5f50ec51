/* Replays a fuzz target's corpus without libFuzzer: every file under the
 * folders (or files) named on the command line is passed to
 * LLVMFuzzerTestOneInput once. Built for every target and run by the normal
 * test suite, as casync's fuzz-main.c does. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 65536;
      uint8_t *n = realloc(buf, cap);
      if (!n) {
        free(buf);
        fclose(f);
        return -1;
      }
      buf = n;
    }
    size_t r = fread(buf + len, 1, cap - len, f);
    if (r == 0)
      break;
    len += r;
  }
  fclose(f);
  /* Copy to an exact-size buffer so AddressSanitizer sees any overread. */
  uint8_t *exact = malloc(len ? len : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  if (len)
    memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

int main(int argc, char **argv)
{
  int files = 0, errors = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) == -1) {
      perror(argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      errors += run_file(argv[i]) == -1;
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
      char path[4096];
      if (e->d_name[0] == '.')
        continue;
      snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      errors += run_file(path) == -1;
      files++;
    }
    if (d)
      closedir(d);
  }
  printf("replayed %d inputs, %d unreadable\n", files, errors);
  printf("CHECKS passed=%d failed=%d\n", files - errors, errors);
  return errors || files == 0 ? 1 : 0;
}
