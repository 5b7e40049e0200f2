/* d1 - the command-line tool of d1.h.

     d1 help                  the commands, one line each (also d1 --help, d1 -h)
     d1 CMD --help            CMD's usage and every option with its default
     d1 info DIR              a checkpoint: its config, parameter count, for
                              each tensor its stored dtype, shape and L2 norm,
                              and the tokenizer.json beside it
     d1 sample DIR --prompt P [options]
                              generate with the checkpoint in DIR (d1_sampler_generate)
     d1 export-gguf DIR FILE.gguf [--tokenizer PATH] [--type f32|bf16]
                              the checkpoint as GGUF for llama.cpp's llada architecture

   Each command's options live in ONE table (sample_options below): the parser
   and the help both walk it, so an option cannot exist without its help line.

   Exit status: 0 on success, 1 with a one-line reason on stderr when the work
   fails (e.g. a malformed checkpoint: d1_strerror and d1_last_error), 2 on a
   usage error (an unknown option, a setting that does not fit the model).
   New subcommands are one function and one line in `commands` below.

   Build: cc -O2 tools/d1.c -o build/d1 -lm -lpthread */
#define D1_IMPLEMENTATION
#include "../d1.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* One option: `value` names its argument (NULL: a flag, off unless given);
   `def` is the default as --help shows it and as the command reads it when
   the option is not given (NULL: none). */
typedef struct d1_option {
    const char *name, *value, *def, *help;
} d1_option;

/* The command line after parsing: per option of the command's table, in table
   order, the text given, else its default ("on" for a flag given). */
#define MAX_OPTIONS 32
typedef struct cmdline {
    const char *val[MAX_OPTIONS];
    const char *pos[2]; /* the positional arguments (DIR, ...) */
    int n_pos;
} cmdline;

typedef struct d1_command {
    const char *name, *args, *help;
    const d1_option *options;
    int n_options, max_pos; /* max_pos: how many positional arguments it takes */
    int (*run)(const struct d1_command *c, const cmdline *a);
} d1_command;

static const d1_option sample_options[] = {
    {"--prompt", "P", NULL, "required: text when there is a tokenizer, else comma-separated ids"},
    {"--tokenizer", "PATH", "DIR", "a tokenizer.json, or a directory holding one"},
    {"--ids", NULL, NULL, "prompt and output as comma-separated ids, even with a tokenizer"},
    {"--gen-len", "N", "32", "tokens to generate"},
    {"--block-len", "N", "gen-len", "LLaDA's semi-autoregressive block; must divide --gen-len"},
    {"--steps", "N", "gen-len", "denoising steps; a multiple of the block count"},
    {"--temperature", "X", "0", "0: argmax; > 0: Gumbel-max sampling"},
    {"--remasking", "R", "low_confidence", "low_confidence, random, margin or entropy"},
    {"--threshold", "X", "0", "Fast-dLLM: reveal every token at least this confident (0: off)"},
    {"--kv-cache", "K", "none", "Fast-dLLM's approximate KV cache: none, prefix or dual"},
    {"--cfg", "X", "0", "classifier-free guidance scale (0: off)"},
    {"--seed", "N", "1", "the random generator's seed"},
    {"--no-eos", NULL, NULL, "never generate EOS"},
    {"--precision", "P", "f32", "the matmuls: f32, bf16, or bf16-only (matrices held in BF16 only: half the memory)"},
    {"--visual", NULL, NULL, "redraw the canvas at every step (masks as '_')"},
    {"--delay", "MS", "60", "with --visual: pause after each redraw"},
};
static const d1_option gguf_options[] = {
    {"--tokenizer", "PATH", "DIR", "a tokenizer.json, or a directory holding one (else tokens are \"[id]\")"},
    {"--type", "T", "f32", "f32, or bf16: the linear layers' matrices and the head in BF16 (the rest F32)"},
};
typedef char sample_options_fit_in_cmdline[COUNT(sample_options) <= MAX_OPTIONS ? 1 : -1];

static int cmd_info(const d1_command *c, const cmdline *a);
static int cmd_sample(const d1_command *c, const cmdline *a);
static int cmd_help(const d1_command *c, const cmdline *a);
static int cmd_export_gguf(const d1_command *c, const cmdline *a);

static const d1_command commands[] = {
    {"info", "DIR", "describe the checkpoint in DIR (config, parameters, tensors)", NULL, 0, 1, cmd_info},
    {"sample", "DIR --prompt P [options]", "generate from a prompt with the checkpoint in DIR",
     sample_options, COUNT(sample_options), 1, cmd_sample},
    {"export-gguf", "DIR FILE.gguf [--tokenizer PATH] [--type f32|bf16]", "write the checkpoint as GGUF for llama.cpp (llada)",
     gguf_options, COUNT(gguf_options), 2, cmd_export_gguf},
    {"help", "[CMD]", "this list, or CMD's options (also d1 CMD --help)", NULL, 0, 1, cmd_help},
};

/* ---- commands, options and help ------------------------------------------------ */

/* The command called `name`, or NULL. */
static const d1_command *find_command(const char *name) {
    int i;
    for (i = 0; i < COUNT(commands); i++)
        if (!strcmp(name, commands[i].name)) return &commands[i];
    return NULL;
}

/* d1 help: every command with its one-line description. */
static void usage(FILE *f) {
    int i;
    fprintf(f, "usage: d1 <command> [args]   (d1 CMD --help: its options)\n");
    for (i = 0; i < COUNT(commands); i++) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
}

/* d1 CMD --help: its usage line, then every option of its table with its default. */
static void command_help(const d1_command *c) {
    int i;
    printf("usage: d1 %s %s\n  %s\n", c->name, c->args, c->help);
    if (c->n_options) printf("options:\n");
    for (i = 0; i < c->n_options; i++) {
        const d1_option *o = &c->options[i];
        printf("  %-13s %-4s  %s (default: %s)\n", o->name, o->value ? o->value : "", o->help,
               o->def ? o->def : o->value ? "none" : "off");
    }
}

/* Prints "d1 CMD: " and the message to stderr; returns 0 (the option readers' "bad"). */
static int fail(const d1_command *c, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "d1 %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 0;
}

/* Says what went wrong (and with which argument, when arg is not NULL) and
   points to the help; returns exit status 2. */
static int usage_error(const d1_command *c, const char *what, const char *arg) {
    fprintf(stderr, "d1 %s: %s%s%s%s (see d1 %s --help)\n", c->name, what, arg ? " '" : "", arg ? arg : "",
            arg ? "'" : "", c->name);
    return 2;
}

/* A library call that failed: its status in words and the library's detail
   (d1_last_error). Returns exit status 1. */
static int lib_fail(const d1_command *c, const char *what, int rc) {
    fail(c, "%s: %s%s%s", what, d1_strerror(rc), *d1_last_error() ? ": " : "", d1_last_error());
    return 1;
}

/* Walks argv (argv[0] is the command) against c's option table into *a.
   Returns -1 to go on, else the exit status: 0 after --help, 2 on a usage error. */
static int parse_args(const d1_command *c, int argc, char **argv, cmdline *a) {
    int i, k;
    memset(a, 0, sizeof *a);
    for (k = 0; k < c->n_options; k++) a->val[k] = c->options[k].def;
    for (i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) { command_help(c); return 0; }
        if (s[0] != '-' || !s[1]) { /* DIR, ... */
            if (a->n_pos == c->max_pos) return usage_error(c, "unexpected argument", s);
            a->pos[a->n_pos++] = s;
            continue;
        }
        for (k = 0; k < c->n_options && strcmp(s, c->options[k].name); k++) {}
        if (k == c->n_options) return usage_error(c, "unknown option", s);
        if (!c->options[k].value) a->val[k] = "on";
        else if (i + 1 == argc) return usage_error(c, "a value is missing after", s);
        else a->val[k] = argv[++i];
    }
    return -1;
}

/* The text of option `name` of c (given or default), NULL when none. */
static const char *opt(const d1_command *c, const cmdline *a, const char *name) {
    int k;
    for (k = 0; k < c->n_options; k++)
        if (!strcmp(name, c->options[k].name)) return a->val[k];
    return NULL;
}

/* Option `name` as an int >= lo into *out; 0 with a message when it is none. */
static int int_opt(const d1_command *c, const cmdline *a, const char *name, int lo, int *out) {
    const char *s = opt(c, a, name);
    char *end;
    long x;
    errno = 0;
    x = strtol(s, &end, 10);
    if (end == s || *end || errno || x > INT_MAX) return fail(c, "%s '%s' is not an integer", name, s);
    if (x < lo) return fail(c, "%s %ld: must be >= %d", name, x, lo);
    *out = (int)x;
    return 1;
}

/* Option `name` as a finite float >= 0 into *out; 0 with a message when it is none. */
static int float_opt(const d1_command *c, const cmdline *a, const char *name, float *out) {
    const char *s = opt(c, a, name);
    char *end;
    double x = strtod(s, &end);
    if (end == s || *end || !(x >= 0.0) || !isfinite(x)) return fail(c, "%s '%s': must be a number >= 0", name, s);
    *out = (float)x;
    return 1;
}

/* Option `name` as an index into names[n] into *out; 0 with a message when it is none. */
static int choice_opt(const d1_command *c, const cmdline *a, const char *name, const char *const *names, int n,
                      int *out) {
    const char *s = opt(c, a, name);
    int i;
    for (i = 0; i < n; i++)
        if (!strcmp(s, names[i])) { *out = i; return 1; }
    fprintf(stderr, "d1 %s: %s '%s' is not one of:", c->name, name, s);
    for (i = 0; i < n; i++) fprintf(stderr, " %s", names[i]);
    fputc('\n', stderr);
    return 0;
}

/* d1 help [CMD] */
static int cmd_help(const d1_command *c, const cmdline *a) {
    const d1_command *cmd;
    if (!a->n_pos) { usage(stdout); return 0; }
    if (!(cmd = find_command(a->pos[0]))) return usage_error(c, "unknown command", a->pos[0]);
    command_help(cmd);
    return 0;
}

/* d1 info DIR */
static int cmd_info(const d1_command *c, const cmdline *a) {
    static const char *const dtype_names[3] = {"F32", "BF16", "F16"};
    d1_model m;
    char cfg[D1_CONFIG_JSON_MAX];
    int *dtypes, rc, i, n, counts[3] = {0, 0, 0};
    if (a->n_pos != 1) return usage_error(c, "expects DIR", NULL);
    if ((rc = d1_model_load(&m, a->pos[0])) != D1_OK) return lib_fail(c, a->pos[0], rc);
    n = d1_model_num_tensors(&m);
    dtypes = (int *)malloc((size_t)n * sizeof(int));
    rc = dtypes ? d1_model_stored_dtypes(&m, a->pos[0], dtypes) : D1_ERR_NOMEM;
    if (rc == D1_OK) rc = d1_config_to_json(&m.config, cfg, sizeof cfg);
    if (rc != D1_OK) {
        free(dtypes);
        d1_model_free(&m);
        return lib_fail(c, a->pos[0], rc);
    }
    printf("checkpoint %s\nconfig.json %s", a->pos[0], cfg);
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
    { /* the tokenizer beside it, if any: what d1 sample --prompt TEXT uses */
        d1_tokenizer tok;
        rc = d1_tokenizer_load(&tok, a->pos[0]);
        if (rc == D1_OK) {
            int added = 0, special = 0;
            for (i = 0; i < tok.n_vocab; i++) {
                int type = d1_tokenizer_token_type(&tok, i);
                added += type == D1_TOKEN_ADDED;
                special += type == D1_TOKEN_SPECIAL;
            }
            printf("tokenizer.json %s%s, %d ids (%d special, %d other added tokens), %d merges; mask %s\n",
                   tok.model == D1_TOKENIZER_BPE ? "BPE" : "WordLevel", tok.byte_level ? " byte-level" : "", tok.n_vocab,
                   special, added, tok.n_merges,
                   d1_tokenizer_token(&tok, m.config.mask_id) ? d1_tokenizer_token(&tok, m.config.mask_id) : "(no token)");
            d1_tokenizer_free(&tok);
        } else {
            printf("tokenizer.json %s\n", rc == D1_ERR_NOT_FOUND ? "none (d1 sample takes ids)" : d1_last_error());
        }
    }
    free(dtypes);
    d1_model_free(&m);
    return 0;
}

/* ---- d1 sample ------------------------------------------------------------------ */

/* The tokenizer at --tokenizer PATH, else DIR's tokenizer.json when there is
   one: 1 with *tok loaded, 0 when there is none (DIR has none and no
   --tokenizer was given), -1 having said why it does not load. */
static int load_tokenizer(const d1_command *c, const cmdline *a, d1_tokenizer *tok) {
    const char *path = opt(c, a, "--tokenizer");
    int given = path && strcmp(path, "DIR"), rc = d1_tokenizer_load(tok, given ? path : a->pos[0]);
    if (rc == D1_OK) return 1;
    if (rc == D1_ERR_NOT_FOUND && !given) return 0;
    lib_fail(c, given ? path : a->pos[0], rc);
    return -1;
}

/* "1,2,3" to ids; -1 on a bad number. */
static int parse_ids(const char *s, int *ids, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || n == cap || x < INT_MIN || x > INT_MAX) return -1;
        ids[n++] = (int)x;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

typedef struct view {
    const d1_tokenizer *tok; /* NULL: print ids */
    int mask_id, delay_ms, total_steps;
} view;

/* One token of the canvas: '_' for a mask, its text, or [id] without a tokenizer. */
static void put_token(const view *w, int id) {
    char text[256];
    size_t len;
    if (id == w->mask_id) fputs("_", stdout);
    else if (w->tok && d1_tokenizer_decode(w->tok, &id, 1, 0, text, sizeof text, &len) == D1_OK) fputs(text, stdout);
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
        if (!w->tok) putchar(' ');
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

/* --block-len / --steps: an int >= 1, or the word "gen-len" (the default). */
static int len_opt(const d1_command *c, const cmdline *a, const char *name, int gen_len, int *out) {
    if (strcmp(opt(c, a, name), "gen-len")) return int_opt(c, a, name, 1, out);
    *out = gen_len;
    return 1;
}

/* The sampler's settings from the options; 0 with a message on a bad one. */
static int sample_settings(const d1_command *c, const cmdline *a, d1_sampler_desc *d, view *w,
                           unsigned long long *seed, int *precision) {
    static const char *const remask[4] = {"low_confidence", "random", "margin", "entropy"};
    static const char *const caches[3] = {"none", "prefix", "dual"};
    static const char *const precisions[3] = {"f32", "bf16", "bf16-only"};
    const char *s = opt(c, a, "--seed");
    char *end;
    *d = d1_sampler_default_desc(0);
    if (!int_opt(c, a, "--gen-len", 1, &d->gen_len) || !len_opt(c, a, "--block-len", d->gen_len, &d->block_len) ||
        !len_opt(c, a, "--steps", d->gen_len, &d->steps) || !float_opt(c, a, "--temperature", &d->temperature) ||
        !float_opt(c, a, "--threshold", &d->threshold) || !float_opt(c, a, "--cfg", &d->cfg_scale) ||
        !choice_opt(c, a, "--remasking", remask, 4, &d->remasking) ||
        !choice_opt(c, a, "--kv-cache", caches, 3, &d->kv_cache) ||
        !choice_opt(c, a, "--precision", precisions, 3, precision) || !int_opt(c, a, "--delay", 0, &w->delay_ms))
        return 0;
    if (d->threshold > 1.0f) return fail(c, "--threshold %g: must be in [0, 1]", d->threshold);
    *seed = strtoull(s, &end, 10);
    if (end == s || *end) return fail(c, "--seed '%s' is not an integer", s);
    /* 0 f32, 1 bf16, 2 bf16-only: D1_PRECISION_*, and -1 for the BF16-only load */
    *precision = *precision == 2 ? -1 : *precision ? D1_PRECISION_BF16 : D1_PRECISION_F32;
    d->suppress_eos = opt(c, a, "--no-eos") != NULL;
    w->total_steps = d->threshold > 0.0f ? 0 : d->steps; /* a threshold adapts the step count */
    if (opt(c, a, "--visual")) { d->callback = on_step; d->user = w; }
    return 1;
}

/* What d1_sampler_generate would refuse, said with the numbers before calling
   it: the canvas against max_seq_len, the schedule, the prompt's token ids. */
static int sample_check(const d1_command *c, const d1_sampler_desc *d, const d1_config *cfg, const int *ids, int P) {
    long long T = (long long)P + d->gen_len;
    int i;
    if (T > cfg->max_seq_len)
        return fail(c, "prompt (%d tokens) + --gen-len %d = %lld tokens, but the model's max_seq_len is %d", P,
                    d->gen_len, T, cfg->max_seq_len);
    if (d->gen_len % d->block_len)
        return fail(c, "--block-len %d does not divide --gen-len %d", d->block_len, d->gen_len);
    if (d->threshold <= 0.0f && d->steps % (d->gen_len / d->block_len))
        return fail(c, "--steps %d is not a multiple of the %d blocks (--gen-len %d / --block-len %d)", d->steps,
                    d->gen_len / d->block_len, d->gen_len, d->block_len);
    for (i = 0; i < P; i++) {
        if (ids[i] < 0 || ids[i] >= cfg->vocab_size)
            return fail(c, "prompt token %d (at position %d) is outside [0, %d): the model's vocab_size is %d",
                        ids[i], i, cfg->vocab_size, cfg->vocab_size);
        if (ids[i] == cfg->mask_id)
            return fail(c, "prompt token %d (at position %d) is the model's mask_id; a prompt holds no masks",
                        ids[i], i);
    }
    return 1;
}

/* Generates from the prompt ids[P] and prints the whole canvas (prompt and
   completion): text through w->tok, else comma-separated ids. Returns the exit status. */
static int generate(const d1_command *c, d1_model *m, const d1_sampler_desc *d, const view *w, const int *ids,
                    int P, unsigned long long seed) {
    int *out = (int *)malloc(sizeof(int) * (size_t)(P + d->gen_len)), rc, i;
    d1_sample_stats st;
    d1_rng rng;
    d1_rng_seed(&rng, seed);
    rc = d1_sampler_generate(m, d, ids, 1, P, NULL, &rng, out, &st);
    if (rc != D1_OK) { free(out); return lib_fail(c, "d1_sampler_generate", rc); }
    if (w->tok) { /* the whole canvas decoded at once (a character may span tokens) */
        size_t len = 0;
        char *text;
        d1_tokenizer_decode(w->tok, out, P + d->gen_len, 0, NULL, 0, &len);
        if ((text = (char *)malloc(len + 1)) != NULL &&
            (rc = d1_tokenizer_decode(w->tok, out, P + d->gen_len, 0, text, len + 1, &len)) == D1_OK)
            printf("%s\n", text);
        free(text);
        if (rc != D1_OK) { free(out); return lib_fail(c, "d1_tokenizer_decode", rc); }
    } else {
        for (i = 0; i < P + d->gen_len; i++) printf("%s%d", i ? "," : "", out[i]);
        printf("\n");
    }
    if (d->callback) fprintf(stderr, "%d steps, %d forward passes\n", st.steps, st.forward_passes);
    free(out);
    return 0;
}

/* d1 sample DIR --prompt P [options] */
static int cmd_sample(const d1_command *c, const cmdline *a) {
    const char *prompt = opt(c, a, "--prompt");
    d1_sampler_desc d;
    unsigned long long seed = 1;
    d1_model m;
    d1_tokenizer tok;
    view w;
    int precision, rc = 0, n, P = -1, *ids = NULL, has_tok;
    memset(&w, 0, sizeof w);
    if (a->n_pos != 1 || !prompt) return usage_error(c, "expects DIR and --prompt P", NULL);
    if (!sample_settings(c, a, &d, &w, &seed, &precision)) return 2;
    if ((has_tok = load_tokenizer(c, a, &tok)) < 0) return 1;
    if (has_tok && !opt(c, a, "--ids")) w.tok = &tok;
    if (w.tok) { /* text -> ids: measure, then encode */
        if ((rc = d1_tokenizer_encode(w.tok, prompt, strlen(prompt), NULL, 0, &n)) == D1_OK &&
            (ids = (int *)malloc(sizeof(int) * (size_t)(n + 1))) != NULL &&
            (rc = d1_tokenizer_encode(w.tok, prompt, strlen(prompt), ids, n + 1, &P)) == D1_OK) {}
        if (rc != D1_OK) { fail(c, "the prompt: %s", d1_last_error()); rc = 2; P = -1; }
    } else {
        n = (int)strlen(prompt) + 1; /* more than the prompt's ids: each takes a character at least */
        ids = (int *)malloc(sizeof(int) * (size_t)n);
        if (ids && (P = parse_ids(prompt, ids, n)) < 0) {
            fail(c, "the prompt does not read as comma-separated ids%s", has_tok ? "" : " (DIR has no tokenizer.json)");
            rc = 2;
        }
    }
    if (P < 0 || !ids) {
        rc = rc ? rc : 1;
    } else if ((rc = precision < 0 ? d1_model_load_bf16(&m, a->pos[0]) : d1_model_load(&m, a->pos[0])) != D1_OK) {
        rc = lib_fail(c, a->pos[0], rc);
    } else {
        w.mask_id = m.config.mask_id;
        if (precision >= 0 && (rc = d1_model_set_precision(&m, precision)) != D1_OK) rc = lib_fail(c, "--precision", rc);
        else if (!sample_check(c, &d, &m.config, ids, P)) rc = 2;
        else rc = generate(c, &m, &d, &w, ids, P, seed);
        d1_model_free(&m);
    }
    free(ids);
    if (has_tok) d1_tokenizer_free(&tok);
    return rc;
}

/* d1 CMD [args]: finds CMD (d1 --help and d1 -h are d1 help), parses its
   arguments against its option table, and runs it. */
/* ---- d1 export-gguf -------------------------------------------------------------
   The checkpoint as one GGUF v3 file (ggml's format) for llama.cpp's `llada`
   architecture and its diffusion CLI. Layout: "GGUF", version 3, the tensor
   and key counts (u64), the keys (string key, u32 type, value), the tensor
   infos (name, n_dims, dims innermost first, ggml type, offset), zero
   padding to 32 bytes, then each tensor's data at its offset (32-aligned),
   all little-endian. A PyTorch weight [out, in] is ggml's {in, out}: the
   same bytes. llama.cpp rotates consecutive pairs (its "normal" RoPE) where
   LLaDA rotates halves (i, i + hd/2), so each head's q and k rows are
   written in the order 0, hd/2, 1, hd/2 + 1, ... (the same function).
   Tokens: from DIR's tokenizer.json (or --tokenizer PATH), model tokens in
   GPT-2's byte-level spelling (a ByteLevel tokenizer's are in it already),
   added tokens as they are, else "[id]". EOS, pad, mask and the special
   added tokens are control tokens, the other added tokens user-defined ones
   (matched whole); the tokenizer's merges (a tokenizer without any gets one
   that never applies, "= =": llama.cpp wants at least one), pre-tokenizer
   "default" (llama.cpp's own expression, not the tokenizer's), no BOS, and
   a chat template that passes the text.
   --type bf16: the matrices D1_PRECISION_BF16 computes with in BF16 (q, k,
   v, attn_output, ffn_gate/up/down and output: ggml type 30, rounded to
   nearest even as d1.h rounds them, d1__bf16_round) and the rest F32 as
   d1.h keeps it: token_embd (a lookup) and the 1-D norms, so llama.cpp's
   pass over that file is the same function as d1.h's BF16 pass. */

enum { GGML_F32 = 0, GGML_BF16 = 30 }; /* ggml's tensor types */
enum { GGUF_U32 = 4, GGUF_I32 = 5, GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9 };

static void put_u32(FILE *f, uint32_t x) {
    unsigned char b[4] = {(unsigned char)x, (unsigned char)(x >> 8), (unsigned char)(x >> 16), (unsigned char)(x >> 24)};
    fwrite(b, 1, 4, f);
}
static void put_u64(FILE *f, uint64_t x) {
    put_u32(f, (uint32_t)x);
    put_u32(f, (uint32_t)(x >> 32));
}
static void put_f32(FILE *f, float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    put_u32(f, u);
}
static void put_str(FILE *f, const char *s) {
    put_u64(f, strlen(s));
    fwrite(s, 1, strlen(s), f);
}
/* A key and its type; counts the keys written (the header's count is filled in after them). */
static uint64_t gguf_keys;
static void kv_key(FILE *f, const char *k, uint32_t type) {
    put_str(f, k);
    put_u32(f, type);
    gguf_keys++;
}
static void kv_u32(FILE *f, const char *k, uint32_t v) { kv_key(f, k, GGUF_U32); put_u32(f, v); }
static void kv_f32(FILE *f, const char *k, float v) { kv_key(f, k, GGUF_F32); put_f32(f, v); }
static void kv_bool(FILE *f, const char *k, int v) { kv_key(f, k, GGUF_BOOL); fputc(v ? 1 : 0, f); }
static void kv_str(FILE *f, const char *k, const char *v) { kv_key(f, k, GGUF_STRING); put_str(f, v); }
/* an array key: its element type and length; the elements follow */
static void kv_array(FILE *f, const char *k, uint32_t type, uint64_t n) {
    kv_key(f, k, GGUF_ARRAY);
    put_u32(f, type);
    put_u64(f, n);
}

/* A token's text in GPT-2's byte-level alphabet (d1.h's d1__byte_cp: the
   printable bytes stand for themselves, the others for U+0100 onwards),
   written as UTF-8 into out[cap]. */
static void byte_level(const char *s, char *out, size_t cap) {
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) n += d1__utf8_put(d1__byte_cp((unsigned char)*s), out + n);
    out[n] = 0;
}

/* Token id as the GGUF spells it: an added token's text as it is, a model
   token in the byte-level alphabet (a ByteLevel tokenizer's texts are in it
   already), "[id]" without a tokenizer or for an id no token has. The text
   lives until the next call. */
static const char *gguf_token(const d1_tokenizer *tok, int id) {
    static char bl[1024];
    char t[512];
    const char *s = tok ? d1_tokenizer_token(tok, id) : NULL;
    if (s && (tok->byte_level || d1_tokenizer_token_type(tok, id) != D1_TOKEN_MODEL)) return s;
    if (s) snprintf(t, sizeof t, "%s", s);
    else snprintf(t, sizeof t, "[%d]", id);
    byte_level(t, bl, sizeof bl);
    return bl;
}

/* One tensor of the file: ggml name, dims (innermost first), its floats and,
   for q and k, the head width whose rows are reordered (0: none). */
typedef struct gguf_tensor {
    char name[64];
    uint64_t ne[2];
    int n_dims, rope_hd, type; /* type: GGML_F32 or GGML_BF16 */
    const float *data;
} gguf_tensor;

/* the bytes of t's data (before the padding to 32) */
static uint64_t gguf_bytes(const gguf_tensor *t) {
    return (t->type == GGML_BF16 ? 2u : 4u) * t->ne[0] * (t->n_dims == 2 ? t->ne[1] : 1);
}

static void gguf_put_data(FILE *f, const gguf_tensor *t) {
    uint64_t r, rows = t->n_dims == 2 ? t->ne[1] : 1, cols = t->ne[0], j;
    for (r = 0; r < rows; r++) {
        uint64_t src = r;
        if (t->rope_hd) { /* row 2i of a head is LLaDA's row i, row 2i + 1 its row i + hd/2 */
            uint64_t h = r / (uint64_t)t->rope_hd, i = r % (uint64_t)t->rope_hd, half = (uint64_t)t->rope_hd / 2;
            src = h * (uint64_t)t->rope_hd + (i % 2 ? half + i / 2 : i / 2);
        }
        if (t->type == GGML_BF16)
            for (j = 0; j < cols; j++) {
                uint16_t h = d1__bf16_round(t->data[src * cols + j]);
                unsigned char b[2] = {(unsigned char)h, (unsigned char)(h >> 8)};
                fwrite(b, 1, 2, f);
            }
        else
            for (j = 0; j < cols; j++) put_f32(f, t->data[src * cols + j]);
    }
}

/* d1 export-gguf DIR FILE.gguf [--tokenizer PATH] [--type f32|bf16] */
static int cmd_export_gguf(const d1_command *c, const cmdline *a) {
    d1_model m;
    d1_config *g;
    d1_tokenizer tok;
    gguf_tensor *ts;
    FILE *f;
    int rc, i, l, nt = 0, V, C, F, KVD, hd, ok, has_tok, mt;
    uint64_t off = 0, k;
    static const char *const types[] = {"f32", "bf16"};
    if (a->n_pos != 2) return usage_error(c, "expects DIR and FILE.gguf", NULL);
    if (!choice_opt(c, a, "--type", types, COUNT(types), &mt)) return 2;
    mt = mt ? GGML_BF16 : GGML_F32; /* the matrices' type */
    if ((has_tok = load_tokenizer(c, a, &tok)) < 0) return 1;
    if ((rc = d1_model_load(&m, a->pos[0])) != D1_OK) {
        if (has_tok) d1_tokenizer_free(&tok);
        return lib_fail(c, a->pos[0], rc);
    }
    g = &m.config;
    V = g->vocab_size; C = g->dim; F = g->ffn_dim; hd = C / g->n_heads; KVD = g->n_kv_heads * hd;
    if (has_tok && tok.n_vocab > V) {
        fail(c, "the tokenizer has %d tokens, the model %d", tok.n_vocab, V);
        d1_tokenizer_free(&tok);
        d1_model_free(&m);
        return 1;
    }
    ts = (gguf_tensor *)calloc((size_t)(3 + 9 * g->n_layers), sizeof *ts);
    if (!ts) {
        if (has_tok) d1_tokenizer_free(&tok);
        d1_model_free(&m);
        return lib_fail(c, "export-gguf", D1_ERR_NOMEM);
    }
#define T2(nm, in, out, p, hdv) (snprintf(ts[nt].name, 64, "%s", nm), ts[nt].n_dims = 2, ts[nt].ne[0] = (uint64_t)(in), \
                                 ts[nt].ne[1] = (uint64_t)(out), ts[nt].data = (p), ts[nt].rope_hd = (hdv), ts[nt].type = mt, nt++)
#define T1(nm, n, p) (snprintf(ts[nt].name, 64, "%s", nm), ts[nt].n_dims = 1, ts[nt].ne[0] = (uint64_t)(n), \
                      ts[nt].data = (p), ts[nt].type = GGML_F32, nt++)
    T2("token_embd.weight", C, V, m.params.wte, 0);
    ts[nt - 1].type = GGML_F32; /* a lookup: F32 in d1.h's BF16 passes too */
    for (l = 0; l < g->n_layers; l++) {
        size_t L = (size_t)l, QW = (size_t)(C + 2 * KVD);
        const float *qkv = m.params.qkv + L * QW * C;
        char nm[64];
        snprintf(nm, 64, "blk.%d.attn_norm.weight", l); T1(nm, C, m.params.attn_norm + L * C);
        snprintf(nm, 64, "blk.%d.attn_q.weight", l); T2(nm, C, C, qkv, hd);
        snprintf(nm, 64, "blk.%d.attn_k.weight", l); T2(nm, C, KVD, qkv + (size_t)C * C, hd);
        snprintf(nm, 64, "blk.%d.attn_v.weight", l); T2(nm, C, KVD, qkv + (size_t)(C + KVD) * C, 0);
        snprintf(nm, 64, "blk.%d.attn_output.weight", l); T2(nm, C, C, m.params.attn_out + L * C * C, 0);
        snprintf(nm, 64, "blk.%d.ffn_norm.weight", l); T1(nm, C, m.params.ff_norm + L * C);
        snprintf(nm, 64, "blk.%d.ffn_gate.weight", l); T2(nm, C, F, m.params.gate_up + L * 2 * F * C, 0);
        snprintf(nm, 64, "blk.%d.ffn_up.weight", l); T2(nm, C, F, m.params.gate_up + L * 2 * F * C + (size_t)F * C, 0);
        snprintf(nm, 64, "blk.%d.ffn_down.weight", l); T2(nm, F, C, m.params.ff_out + L * C * F, 0);
    }
    T1("output_norm.weight", C, m.params.ln_f);
    T2("output.weight", C, V, m.params.head, 0); /* the tied head too: llama.cpp reads it if present */
#undef T1
#undef T2
    if (!(f = fopen(a->pos[1], "wb"))) {
        fail(c, "cannot write %s: %s", a->pos[1], strerror(errno));
        if (has_tok) d1_tokenizer_free(&tok);
        free(ts);
        d1_model_free(&m);
        return 1;
    }
    fwrite("GGUF", 1, 4, f);
    put_u32(f, 3);
    put_u64(f, (uint64_t)nt);
    put_u64(f, 0); /* the key count, filled in below */
    gguf_keys = 0;
    kv_str(f, "general.architecture", "llada");
    kv_str(f, "general.name", "d1.h checkpoint");
    kv_u32(f, "general.alignment", 32);
    kv_u32(f, "llada.context_length", (uint32_t)g->max_seq_len);
    kv_u32(f, "llada.embedding_length", (uint32_t)C);
    kv_u32(f, "llada.block_count", (uint32_t)g->n_layers);
    kv_u32(f, "llada.feed_forward_length", (uint32_t)F);
    kv_u32(f, "llada.vocab_size", (uint32_t)V);
    kv_u32(f, "llada.attention.head_count", (uint32_t)g->n_heads);
    kv_u32(f, "llada.attention.head_count_kv", (uint32_t)g->n_kv_heads);
    kv_f32(f, "llada.attention.layer_norm_rms_epsilon", g->norm_eps);
    kv_bool(f, "llada.attention.causal", 0);
    kv_f32(f, "llada.rope.freq_base", g->rope_theta);
    kv_u32(f, "llada.rope.dimension_count", (uint32_t)hd);
    kv_bool(f, "diffusion.shift_logits", 0);
    kv_str(f, "tokenizer.ggml.model", "gpt2");
    kv_str(f, "tokenizer.ggml.pre", "default");
    kv_array(f, "tokenizer.ggml.tokens", GGUF_STRING, (uint64_t)V);
    for (i = 0; i < V; i++) put_str(f, gguf_token(has_tok ? &tok : NULL, i));
    kv_array(f, "tokenizer.ggml.token_type", GGUF_I32, (uint64_t)V);
    for (i = 0; i < V; i++) { /* 1 normal, 3 control, 4 user-defined */
        int type = has_tok ? d1_tokenizer_token_type(&tok, i) : D1_TOKEN_MODEL;
        int special = i == g->eos_id || i == g->pad_id || i == g->mask_id || type == D1_TOKEN_SPECIAL;
        put_u32(f, special ? 3u : type == D1_TOKEN_ADDED ? 4u : 1u);
    }
    if (has_tok && tok.n_merges > 0) { /* the tokenizer's merges, "left right" by rank */
        kv_array(f, "tokenizer.ggml.merges", GGUF_STRING, (uint64_t)tok.n_merges);
        for (i = 0; i < tok.n_merges; i++) {
            char pair[1024];
            int lt = 0, rt = 0;
            d1_tokenizer_merge(&tok, i, &lt, &rt);
            snprintf(pair, sizeof pair, "%s", gguf_token(&tok, lt));
            snprintf(pair + strlen(pair), sizeof pair - strlen(pair), " %s", gguf_token(&tok, rt));
            put_str(f, pair);
        }
    } else {
        kv_array(f, "tokenizer.ggml.merges", GGUF_STRING, 1);
        put_str(f, "= =");
    }
    kv_u32(f, "tokenizer.ggml.eos_token_id", (uint32_t)(g->eos_id >= 0 ? g->eos_id : g->mask_id));
    kv_u32(f, "tokenizer.ggml.padding_token_id", (uint32_t)(g->pad_id >= 0 ? g->pad_id : g->mask_id));
    kv_u32(f, "tokenizer.ggml.mask_token_id", (uint32_t)g->mask_id);
    kv_bool(f, "tokenizer.ggml.add_bos_token", 0);
    kv_bool(f, "tokenizer.ggml.add_eos_token", 0);
    kv_str(f, "tokenizer.chat_template", "{% for message in messages %}{{ message['content'] }}{% endfor %}");
    if (fseek(f, 16, SEEK_SET) == 0) put_u64(f, gguf_keys);
    fseek(f, 0, SEEK_END);
    for (i = 0; i < nt; i++) { /* tensor infos: F32 or BF16, 32-aligned offsets */
        uint64_t bytes = gguf_bytes(&ts[i]);
        put_str(f, ts[i].name);
        put_u32(f, (uint32_t)ts[i].n_dims);
        for (l = 0; l < ts[i].n_dims; l++) put_u64(f, ts[i].ne[l]);
        put_u32(f, (uint32_t)ts[i].type);
        put_u64(f, off);
        off = (off + bytes + 31) / 32 * 32;
    }
    for (k = (uint64_t)ftell(f); k % 32; k++) fputc(0, f);
    for (i = 0, off = 0; i < nt; i++) {
        uint64_t bytes = gguf_bytes(&ts[i]);
        gguf_put_data(f, &ts[i]);
        for (k = bytes; k % 32; k++) fputc(0, f);
    }
    ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok) fail(c, "write %s failed", a->pos[1]);
    else printf("%s: %d tensors (matrices %s), %s tokens, llada architecture\n", a->pos[1], nt,
                mt == GGML_BF16 ? "BF16" : "F32", has_tok ? "the tokenizer's" : "[id]");
    if (has_tok) d1_tokenizer_free(&tok);
    free(ts);
    d1_model_free(&m);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *name = argc < 2 ? "" : !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ? "help" : argv[1];
    const d1_command *c = find_command(name);
    cmdline a;
    int rc;
    if (!c) {
        if (argc >= 2) fprintf(stderr, "d1: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    rc = parse_args(c, argc - 1, argv + 1, &a);
    return rc >= 0 ? rc : c->run(c, &a);
}
