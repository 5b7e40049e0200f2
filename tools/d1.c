/* d1 - the command-line tool of d1.h.

     d1 info DIR     a checkpoint: its config, parameter count, and for each
                     tensor the dtype it is stored with, its shape and L2 norm
     d1 sample DIR --prompt P [options]
                     generate with the checkpoint in DIR (d1_sampler_generate):
       --gen-len N --block-len N --steps N     LLaDA's schedule (defaults 32, gen-len, gen-len)
       --temperature X --remasking low_confidence|random|margin|entropy
       --threshold X  (Fast-dLLM)  --kv-cache none|prefix|dual  --cfg X  --seed N
       --no-eos       suppress EOS
       --precision f32|bf16   the matmuls of the sampler's passes (d1_model_set_precision)
       --vocab FILE   one token per line (line i is token i): the prompt is text,
                      split greedily by the longest matching token, and the
                      output is text; without it, or with --ids, the prompt is
                      comma-separated ids and the whole final canvas (prompt and
                      completion) is printed as comma-separated ids on one line
       --visual       redraw the canvas at every step (masks as '_', the tokens
                      revealed at this step highlighted, a progress line)
       --delay MS     pause after each redraw (default 60 with --visual)

   Exit status: 0 on success, 1 with a one-line reason on stderr when the work
   fails (e.g. a malformed checkpoint), 2 on a usage error. New subcommands
   (d1 sample, ...) are one function and one line in `commands` below.

   Build: cc -O2 tools/d1.c -o build/d1 -lm -lpthread */
#define D1_IMPLEMENTATION
#include "../d1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct d1_command {
    const char *name, *args, *help;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand */
} d1_command;

static int cmd_info(int argc, char **argv);
static int cmd_sample(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const d1_command commands[] = {
    {"info", "DIR", "describe the checkpoint in DIR (config, parameters, tensors)", cmd_info},
    {"sample", "DIR ...", "generate from a prompt (see the top of tools/d1.c for options)", cmd_sample},
    {"help", "", "this text", cmd_help},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

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

/* ---- d1 sample ------------------------------------------------------------------ */

typedef struct vocab {
    char **tok; /* [n] token text */
    int n;
} vocab;

/* Reads one token per line; "\n" in a line stands for a newline. */
static int vocab_load(vocab *v, const char *path) {
    FILE *f = fopen(path, "rb");
    char line[256];
    memset(v, 0, sizeof *v);
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n"), i, k = 0;
        char *t = (char *)malloc(n + 1);
        for (i = 0; i < n; i++) {
            if (line[i] == '\\' && i + 1 < n && line[i + 1] == 'n') { t[k++] = '\n'; i++; }
            else t[k++] = line[i];
        }
        t[k] = 0;
        v->tok = (char **)realloc(v->tok, (size_t)(v->n + 1) * sizeof(char *));
        v->tok[v->n++] = t;
    }
    fclose(f);
    return v->n > 0;
}

/* Text to ids by the longest matching token at each position; -1 if stuck. */
static int vocab_encode(const vocab *v, const char *text, int *ids, int cap) {
    int n = 0;
    while (*text) {
        int best = -1, i;
        size_t best_len = 0;
        for (i = 0; i < v->n; i++) {
            size_t l = strlen(v->tok[i]);
            if (l > best_len && !strncmp(text, v->tok[i], l)) { best = i; best_len = l; }
        }
        if (best < 0 || n == cap) return -1;
        ids[n++] = best;
        text += best_len;
    }
    return n;
}

/* "1,2,3" to ids; -1 on a bad number. */
static int parse_ids(const char *s, int *ids, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || n == cap) return -1;
        ids[n++] = (int)x;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

typedef struct view {
    const vocab *v;        /* NULL: print ids */
    int mask_id, delay_ms, total_steps;
} view;

static void put_token(const view *w, int id) {
    if (id == w->mask_id) fputs("_", stdout);
    else if (w->v && id >= 0 && id < w->v->n) fputs(w->v->tok[id], stdout);
    else printf("[%d]", id);
}

/* The --visual callback: home the cursor, clear, draw the canvas. */
static void on_step(const d1_sample_event *ev, void *user) {
    const view *w = (const view *)user;
    int i;
    printf("\033[H\033[2J");
    for (i = 0; i < ev->T; i++) {
        int id = ev->canvas[i]; /* the first row */
        if (ev->revealed[i]) fputs("\033[7m", stdout);
        else if (i < ev->prompt_len) fputs("\033[2m", stdout);
        put_token(w, id);
        if (ev->revealed[i] || i < ev->prompt_len) fputs("\033[0m", stdout);
        if (!w->v) putchar(' ');
    }
    printf("\n\nstep %d%s%d  block %d  masks left %d\n", ev->step + 1, w->total_steps ? "/" : "",
           w->total_steps, ev->block + 1, ev->n_masked);
    fflush(stdout);
    if (w->delay_ms > 0) {
        struct timespec ts;
        ts.tv_sec = w->delay_ms / 1000;
        ts.tv_nsec = (long)(w->delay_ms % 1000) * 1000000L;
        nanosleep(&ts, NULL);
    }
}

static int cmd_sample(int argc, char **argv) {
    static const char *const remask[4] = {"low_confidence", "random", "margin", "entropy"};
    static const char *const caches[3] = {"none", "prefix", "dual"};
    const char *dir = NULL, *prompt = NULL, *vocab_path = NULL;
    d1_sampler_desc d;
    d1_sample_stats st;
    d1_model m;
    d1_rng rng;
    vocab voc;
    view w;
    int ids_io = 0, visual = 0, delay = -1, precision = D1_PRECISION_F32, i, k, rc, P, *ids, *out;
    unsigned long long seed = 1;
    memset(&d, 0, sizeof d);
    d.gen_len = 32;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "--ids")) { ids_io = 1; used = 0; }
        else if (!strcmp(a, "--visual")) { visual = 1; used = 0; }
        else if (!strcmp(a, "--no-eos")) { d.suppress_eos = 1; used = 0; }
        else if (a[0] != '-' && !dir) { dir = a; used = 0; }
        else if (!val) { fprintf(stderr, "d1 sample: %s needs a value\n", a); return 2; }
        else if (!strcmp(a, "--prompt")) prompt = val;
        else if (!strcmp(a, "--vocab")) vocab_path = val;
        else if (!strcmp(a, "--gen-len")) d.gen_len = atoi(val);
        else if (!strcmp(a, "--block-len")) d.block_len = atoi(val);
        else if (!strcmp(a, "--steps")) d.steps = atoi(val);
        else if (!strcmp(a, "--temperature")) d.temperature = (float)atof(val);
        else if (!strcmp(a, "--threshold")) d.threshold = (float)atof(val);
        else if (!strcmp(a, "--cfg")) d.cfg_scale = (float)atof(val);
        else if (!strcmp(a, "--seed")) seed = strtoull(val, NULL, 10);
        else if (!strcmp(a, "--delay")) delay = atoi(val);
        else if (!strcmp(a, "--remasking")) {
            for (k = 0; k < 4 && strcmp(val, remask[k]); k++) {}
            if (k == 4) { fprintf(stderr, "d1 sample: unknown remasking '%s'\n", val); return 2; }
            d.remasking = k;
        } else if (!strcmp(a, "--precision")) {
            if (strcmp(val, "f32") && strcmp(val, "bf16")) {
                fprintf(stderr, "d1 sample: unknown precision '%s' (f32 or bf16)\n", val);
                return 2;
            }
            precision = strcmp(val, "bf16") ? D1_PRECISION_F32 : D1_PRECISION_BF16;
        } else if (!strcmp(a, "--kv-cache")) {
            for (k = 0; k < 3 && strcmp(val, caches[k]); k++) {}
            if (k == 3) { fprintf(stderr, "d1 sample: unknown kv cache '%s'\n", val); return 2; }
            d.kv_cache = k;
        } else { fprintf(stderr, "d1 sample: unknown option '%s'\n", a); return 2; }
        i += used;
    }
    if (!dir || !prompt) {
        fprintf(stderr, "usage: d1 sample DIR --prompt P [--vocab FILE | --ids] [options]\n");
        return 2;
    }
    if (vocab_path && !vocab_load(&voc, vocab_path)) {
        fprintf(stderr, "d1 sample: cannot read the vocabulary %s\n", vocab_path);
        return 1;
    }
    if ((rc = d1_model_load(&m, dir)) != D1_OK) {
        fprintf(stderr, "d1 sample: %s: %s\n", dir, d1_strerror(rc));
        return 1;
    }
    if ((rc = d1_model_set_precision(&m, precision)) != D1_OK) {
        fprintf(stderr, "d1 sample: precision: %s\n", d1_strerror(rc));
        return 1;
    }
    ids = (int *)malloc(sizeof(int) * (size_t)m.config.max_seq_len);
    P = vocab_path && !ids_io ? vocab_encode(&voc, prompt, ids, m.config.max_seq_len)
                              : parse_ids(prompt, ids, m.config.max_seq_len);
    if (P < 0) {
        fprintf(stderr, "d1 sample: the prompt does not %s\n",
                vocab_path && !ids_io ? "split into vocabulary tokens" : "read as comma-separated ids");
        return 1;
    }
    w.v = vocab_path && !ids_io ? &voc : NULL;
    w.mask_id = m.config.mask_id;
    w.delay_ms = delay >= 0 ? delay : visual ? 60 : 0;
    w.total_steps = d.threshold > 0.0f ? 0 : d.steps ? d.steps : d.gen_len;
    if (visual) { d.callback = on_step; d.user = &w; }
    out = (int *)malloc(sizeof(int) * (size_t)(P + (d.gen_len > 0 ? d.gen_len : 0)));
    d1_rng_seed(&rng, seed);
    rc = d1_sampler_generate(&m, &d, ids, 1, P, NULL, &rng, out, &st);
    if (rc != D1_OK) {
        fprintf(stderr, "d1 sample: %s%s\n", d1_strerror(rc),
                rc == D1_ERR_ARG ? " (--block-len must divide --gen-len, --steps be a multiple of the blocks)" : "");
        return 1;
    }
    if (w.v) {
        for (i = 0; i < P + d.gen_len; i++) put_token(&w, out[i]);
        printf("\n");
    } else {
        for (i = 0; i < P + d.gen_len; i++) printf("%s%d", i ? "," : "", out[i]);
        printf("\n");
    }
    if (visual) fprintf(stderr, "%d steps, %d forward passes\n", st.steps, st.forward_passes);
    free(ids);
    free(out);
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
