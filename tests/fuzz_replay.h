/* fuzz_replay.h - the replay driver of a libFuzzer target, for builds
   without libFuzzer (make test): runs LLVMFuzzerTestOneInput over every file
   named on the command line and every file in every directory named
   (default: D1_TEST_DATA D1_FUZZ_SEEDS, the committed seeds), then prints
   the test suite's summary line; a failing input aborts, which tests/run.sh
   counts as a failure. The including target defines D1_FUZZ_NAME and
   D1_FUZZ_SEEDS, or D1_FUZZ_OWN_MAIN to take replay_file only. */
#include <dirent.h>
#include <sys/stat.h>

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return 0; }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(buf); return 0; }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 1;
}

#ifndef D1_TEST_DATA
#define D1_TEST_DATA "tests/data"
#endif

#ifndef D1_FUZZ_OWN_MAIN
/* Runs the target over every file named, and every file in every directory
   named (default: the committed seeds), then prints the test suite's summary
   line; a failing input aborts, which tests/run.sh counts as a failure. */
int main(int argc, char **argv) {
    static const char *const dflt[2] = {D1_FUZZ_NAME, D1_TEST_DATA D1_FUZZ_SEEDS};
    int i, n = 0;
    if (argc < 2) {
        argc = 2;
        argv = (char **)dflt;
    }
    for (i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "no such file: %s\n", argv[i]);
            printf("0 passed, 1 failed\n");
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            char path[4096];
            while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.') continue;
                snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
                n += replay_file(path);
            }
            if (d) closedir(d);
        } else {
            n += replay_file(argv[i]);
        }
    }
    printf("ok   %s: replayed %d inputs\n%d passed, 0 failed\n", D1_FUZZ_NAME, n, n > 0);
    return n > 0 ? 0 : 1;
}
#endif
