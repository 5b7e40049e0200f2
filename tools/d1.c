/* d1 - the command-line tool of d1.h.

     d1 info DIR     a checkpoint: its config, parameter count, and for each
                     tensor the dtype it is stored with, its shape and L2 norm

   Exit status: 0 on success, 1 with a one-line reason on stderr when the work
   fails (e.g. a malformed checkpoint), 2 on a usage error. New subcommands
   (d1 sample, ...) are one function and one line in `commands` below.

   Build: cc -O2 tools/d1.c -o build/d1 -lm -lpthread */
#define D1_IMPLEMENTATION
#include "../d1.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct d1_command {
    const char *name, *args, *help;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand */
} d1_command;

static int cmd_info(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const d1_command commands[] = {
    {"info", "DIR", "describe the checkpoint in DIR (config, parameters, tensors)", cmd_info},
    {"help", "", "this text", cmd_help},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

/* The message of a status code (the checkpoint codes until d1_strerror has them). */

static void usage(FILE *f) {
    int i;
    fprintf(f, "usage: d1 <command> [args]\n");
    for (i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  d1 %s %-8s %s\n", commands[i].name, commands[i].args, commands[i].help);
}

static int cmd_help(int argc, char **argv) {
    (void)argc; (void)argv;
    usage(stdout);
    return 0;
}

/* d1 info DIR */
static int cmd_info(int argc, char **argv) {
    static const char *const dtype_names[3] = {"F32", "BF16", "F16"};
    d1_model m;
    char cfg[D1_CONFIG_JSON_MAX];
    int *dtypes, rc, i, n, counts[3] = {0, 0, 0};
    if (argc != 2) {
        fprintf(stderr, "usage: d1 info DIR\n");
        return 2;
    }
    rc = d1_model_load(&m, argv[1]);
    if (rc != D1_OK) {
        fprintf(stderr, "d1 info: %s: %s\n", argv[1], d1_strerror(rc));
        return 1;
    }
    n = d1_model_num_tensors(&m);
    dtypes = (int *)malloc((size_t)n * sizeof(int));
    rc = dtypes ? d1_model_stored_dtypes(&m, argv[1], dtypes) : D1_ERR_NOMEM;
    if (rc == D1_OK) rc = d1_config_to_json(&m.config, cfg, sizeof cfg);
    if (rc != D1_OK) {
        fprintf(stderr, "d1 info: %s: %s\n", argv[1], d1_strerror(rc));
        free(dtypes);
        d1_model_free(&m);
        return 1;
    }
    printf("checkpoint %s\nconfig.json %s", argv[1], cfg);
    printf("parameters %zu (%.2f M)\ntensors %d\n", m.num_params, m.num_params / 1e6, n);
    printf("%-48s %-5s %-14s %s\n", "name", "dtype", "shape", "L2 norm");
    for (i = 0; i < n; i++) {
        d1_tensor t;
        char shape[40];
        double ss = 0.0;
        size_t j;
        d1_model_tensor(&m, i, &t);
        for (j = 0; j < t.size; j++) ss += (double)m.param_memory[t.offset + j] * m.param_memory[t.offset + j];
        if (t.ndim == 2) snprintf(shape, sizeof shape, "[%d, %d]", t.shape[0], t.shape[1]);
        else snprintf(shape, sizeof shape, "[%d]", t.shape[0]);
        printf("%-48s %-5s %-14s %.6g\n", t.name, dtype_names[dtypes[i]], shape, sqrt(ss));
        counts[dtypes[i]]++;
    }
    printf("stored as:");
    for (i = 0; i < 3; i++)
        if (counts[i]) printf(" %s x%d", dtype_names[i], counts[i]);
    printf("\n");
    free(dtypes);
    d1_model_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    int i;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    for (i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "d1: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
