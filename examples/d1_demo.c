/* d1_demo.c - the whole d1 recipe on tiny models, on a laptop: the paper's
   Table 1 in miniature, for 4x4 Sudoku and 3-number Countdown (tasks.h).

       base        masked-diffusion training on prompt ⊕ <answer>…</answer>,
                   conditional on the prompt (the prompt is never masked)
       +SFT        masked SFT of the base on the solver's reasoning traces
       +diffu-GRPO diffu-GRPO from the base
       d1          diffu-GRPO from the +SFT model

   then all four are evaluated on held-out prompts at temperature 0
   (low_confidence remasking, steps = gen_len / 2) at two generation
   lengths, and the table is printed with standard errors.

   USAGE
       d1_demo [--task all|NAME] [--stage all|base|sft|rl|rl-base|d1|x|x-rl-base|x-d1|eval|table]
               [--full] [--quick] [--seed N] [--out DIR] [--ship] [--rope-theta X]
               [--base-steps N] [--sft-steps N] [--base-lr X] [--sft-lr X] [--rl-iters N] [--rl-lr X]
               [--monitor N] [--base-joint]
               [--rl-prompts N] [--rl-group G] [--rl-inner N]
               [--rl-estimator one-step|coupled|partial]
               [--rl-advantages scaled|centered] [--device cpu|cuda]
               [--dim N] [--layers N] [--train-precision f32|mixed] [--precision auto|f32|bf16]

   --task NAME  one task of tasks.h's table (sudoku, countdown); all: each of them
   --full   train base and SFT from scratch (demo-full); without it the RL
            arms start from the checkpoints shipped in examples/checkpoints
   --quick  tiny budgets: a smoke test of every stage in a minute or two
   --ship   after training (or, if trained already, from OUT), save base and
            SFT as BF16 into examples/checkpoints
   --base-steps, --sft-steps, --base-lr, --sft-lr, --rl-iters, --rl-lr
            override the defaults
   --monitor N  held-out check (48 prompts, one decoded sample) every N
            base/SFT steps
   --dim N, --layers N  another model size (heads of 32, ffn 11/4 of dim);
            the shipped checkpoints are 128 x 4, so use --full with them
   --train-precision mixed  base and SFT train with D1_PRECISION_BF16_MIXED
            (BF16 operands in the forward and backward matmuls, FP32
            weights, gradients and moments); evaluation stays FP32
   --precision bf16  the RL arms and the evaluation in BF16: rollouts,
            log-prob passes and evaluation D1_PRECISION_BF16, the arms'
            updates D1_PRECISION_BF16_MIXED (FP32 weights, gradients and
            moments); f32: all FP32; auto (the default): bf16 where
            d1_bf16_simd_available() (AVX512-BF16, NEON BF16), else f32
            (the scalar BF16 kernel is slower than FP32). The two tables
            differ by BF16's rounding (README); on a GPU (--device cuda)
            everything is FP32
   Every stage saves its checkpoint as it goes (an interrupted run resumes
   where it stopped; a finished stage is skipped), logs each step to
   OUT/TASK/STAGE.csv and draws OUT/TASK/STAGE.svg. OUT/TASK/settings.txt
   records the settings; a run with other settings refuses that OUT. The two
   RL arms run in two processes, one per core.

   The measurements beside the pipeline (Fast-dLLM's threshold decoding
   against the schedule, the RL headroom of each row) and its experimental
   variants (a fixed pool of RL prompts, base and SFT on other puzzles) are
   tools/demo_measure.c, which builds on this file (D1_DEMO_NO_MAIN).

   Uses only d1.h's public API. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "tasks.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ==== settings ============================================================== */
/* How an RL arm updates: d1_grpo_desc's estimator and objective settings and
   its AdamW's lr and weight decay. */
typedef struct rl_recipe {
    const char *name;          /* for the table's rows                               */
    int   estimator, kl, mc, loo, scale, inner; /* d1_grpo_desc's estimator, kl, mc_draws,
                                  leave_one_out, scale_rewards, inner_steps           */
    float lr, wd, beta, eps;   /* AdamW's lr and weight decay; the KL weight; clip eps */
    float temperature;         /* the rollouts' (d1: 0.9; d2 and SPG on Sudoku: 0.3)  */
    int   remasking;           /* the rollouts' D1_REMASK_* (d1: low_confidence)      */
    int   group_masks;         /* d1_grpo_desc's: 1, a group's rows share their masks */
    float dual_clip;           /* d1_grpo_desc's: dual-clip's c (> 1), 0 off (d1)     */
} rl_recipe;

/* d1's (d1_grpo_default_desc, its optimizer), mu 4 for the 2-core budget and
   lr 3e-4 for these full-parameter tiny models (d1: 3e-6 on LoRA adapters). */
static rl_recipe recipe_d1(void) {
    rl_recipe r = {"d1", D1_LOGP_ONE_STEP, D1_KL_K3, 0, 0, 0, 4, 3e-4f, 0.1f, 0.04f, 0.5f, 0.9f,
                   D1_REMASK_LOW_CONFIDENCE, 0, 0.0f};
    return r;
}
/* A successor's (DESIGN 7b), by estimator, with what differs from d1's as its
   recipe has it; weight decay 0 (with LoRA the decay pulls the adapters to the
   base model; on full parameters it would pull the weights to 0, away from it). */
static rl_recipe recipe_after_d1(int estimator) {
    rl_recipe r = recipe_d1();
    r.estimator = estimator; r.wd = 0.0f;
    switch (estimator) {
    case D1_LOGP_ELBO: /* ESPO: k2 on the sequence ELBO, beta 1e-2, eps 0.2, leave-one-out */
        r.name = "ESPO"; r.kl = D1_KL_K2; r.beta = 0.01f; r.eps = 0.2f; r.loo = 1; r.mc = 1; break;
    case D1_LOGP_TRAJECTORY: r.name = "d2"; break; /* d2: d1's loss on the trajectory's segments */
    case D1_LOGP_BLOCK: r.name = "SPG"; r.beta = 0.0f; break; /* SPG: no KL, no ratio */
    case D1_LOGP_COUPLED: r.name = "coupled"; break;
    case D1_LOGP_PARTIAL: r.name = "partial"; break;
    default: break;
    }
    return r;
}

typedef struct settings {
    const task *t;
    uint64_t seed;
    const char *out;           /* runtime outputs (build/demo)                       */
    int  full, quick, ship;
    int  line_progress;        /* 1 in child processes: progress as lines, not \r   */
    int  device;               /* D1_DEVICE_CPU, or D1_DEVICE_CUDA (--device cuda)  */
    /* model (DESIGN §8's size) */
    int  dim, layers, heads, ffn;
    float rope_theta;
    int  base_joint;           /* 1: the base's loss masks the prompt too (d1_pretrain_loss) */
    /* base and SFT */
    int  base_steps, sft_steps, batch;
    float base_lr, sft_lr;
    int  train_mixed;          /* 1: base and SFT train in D1_PRECISION_BF16_MIXED (--train-precision mixed) */
    int  bf16;                 /* 1: the RL arms and the evaluation in BF16 (--precision): rollouts,
                                  log-prob passes and evaluation D1_PRECISION_BF16, the arms' updates
                                  D1_PRECISION_BF16_MIXED; 0: all FP32 */
    /* diffu-GRPO */
    int  rl_iters, rl_prompts, rl_group, rl_kv_cache;
    float rl_threshold;
    rl_recipe rl;              /* the paper's arms (+diffu-GRPO, d1): d1's recipe        */
    rl_recipe rlx;             /* the successors' arms: the same starts, another estimator */
    /* decoding: the block of rollouts and evaluation (0: the whole generation) */
    int  block;
    /* evaluation */
    int  eval_n, monitor_n, monitor_every, train_monitor_every, save_every;
    /* an experiment's variant (tools/demo_measure.c); NULL: the pipeline's own */
    void (*train_example)(const struct settings *S, d1_rng *rng, example *ex);        /* base and SFT data */
    void (*arm_prompts)(const struct settings *S, int it, d1_rng *rng, int *prompts); /* an RL iteration's */
    const char *variant;       /* names the variant in settings.txt                          */
} settings;

static settings settings_default(const task *t, int quick) {
    settings s;
    memset(&s, 0, sizeof s);
    s.t = t; s.seed = 1; s.out = "build/demo";
    s.dim = 128; s.layers = 4; s.heads = 4; s.ffn = 352; s.rope_theta = 10000.0f;
    s.batch = 32; s.base_lr = 3e-3f; s.sft_lr = 1e-3f;
    s.base_steps = 4000; s.sft_steps = 6000;
    s.rl_iters = 20; s.rl_prompts = 16; s.rl_group = 6; s.rl_kv_cache = 1;
    s.rl = recipe_d1(); s.rlx = recipe_after_d1(D1_LOGP_ELBO);
    s.block = 0; /* one block: it holds the answer, as d1's block 32 holds its tasks' (issue #14) */
    s.eval_n = 500; s.monitor_n = 48; s.monitor_every = 5; s.train_monitor_every = 250; s.save_every = 5;
    if (quick) {
        s.base_steps = 40; s.sft_steps = 30; s.rl_iters = 3; s.rl_prompts = 4;
        s.eval_n = 24; s.monitor_n = 8; s.monitor_every = 2; s.train_monitor_every = 20; s.save_every = 2;
    }
    s.quick = quick;
    return s;
}

/* The table's rows: the paper's four, then the same two RL arms with the
   successor's estimator (S->rlx). */
static const char *const stage_names[] = {"base", "sft", "rl-base", "d1", "x-rl-base", "x-d1"};
enum { STAGE_BASE, STAGE_SFT, STAGE_RL_BASE, STAGE_D1, STAGE_XRL_BASE, STAGE_XD1, N_STAGES };
static int start_of(int stage) { return stage == STAGE_D1 || stage == STAGE_XD1 ? STAGE_SFT : STAGE_BASE; }
static const rl_recipe *recipe_of(const settings *S, int stage) { return stage >= STAGE_XRL_BASE ? &S->rlx : &S->rl; }
static const char *row_name(const settings *S, int stage, char *buf, size_t cap) {
    static const char *const paper[] = {"base", "+SFT", "+diffu-GRPO", "d1"};
    if (stage < STAGE_XRL_BASE) return paper[stage];
    snprintf(buf, cap, stage == STAGE_XRL_BASE ? "+RL (%s)" : "d1 (%s)", S->rlx.name);
    return buf;
}

static int gen_len_max(const task *t) { return t->gen_lens[t->n_gen_lens - 1]; }
static int seq_len(const task *t) { return t->prompt_len + gen_len_max(t); }

/* ==== small helpers: time, files, progress ================================== */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int mkdirs(const char *path) { /* mkdir -p */
    char buf[512];
    size_t i, n = strlen(path);
    if (n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++)
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            buf[i] = c;
        }
    return 0;
}

static int file_exists(const char *path) { struct stat st; return stat(path, &st) == 0; }

static void path_of(char *buf, size_t cap, const settings *S, const char *stage, const char *what) {
    snprintf(buf, cap, "%s/%s/%s%s", S->out, S->t->name, stage, what);
}

/* Where the repository ships a stage's model (base and SFT). */
static void shipped_dir(char *buf, size_t cap, const settings *S, int stage) {
    snprintf(buf, cap, "examples/checkpoints/%s/%s", S->t->name, stage_names[stage]);
}

/* Where a stage's finished model lives. Base and SFT come from the shipped
   checkpoints unless --full (or none is shipped). */
static void model_dir(char *buf, size_t cap, const settings *S, int stage) {
    if (stage <= STAGE_SFT && !S->full) {
        shipped_dir(buf, cap, S, stage);
        if (file_exists(buf)) return;
    }
    path_of(buf, cap, S, stage_names[stage], "/final");
}

/* the program's name in its messages (tools/demo_measure.c sets its own) */
static const char *demo_prog = "d1_demo";

static int check(int rc, const char *what) {
    if (rc != D1_OK) fprintf(stderr, "%s: %s: %s (%s)\n", demo_prog, what, d1_strerror(rc), d1_last_error());
    return rc;
}

/* Resumes a stage from its checkpoint directory when that holds a valid
   pair (the model and training state of one d1_checkpoint_save); otherwise
   says why (nothing is said when there is no checkpoint yet) and returns 0:
   the stage starts over. On 1, *m and *opt are loaded. */
static int resume_from(const char *dir, d1_model *m, d1_adamw *opt, const d1_adamw_desc *od, d1_rng *rngs) {
    int rc = d1_model_load(m, dir);
    if (rc != D1_OK) {
        if (rc != D1_ERR_NOT_FOUND)
            fprintf(stderr, "%s: %s: %s (%s); the stage starts over\n", demo_prog, dir, d1_strerror(rc), d1_last_error());
        return 0;
    }
    if ((rc = d1_adamw_init(opt, m, od)) == D1_OK) {
        rc = d1_train_state_load(dir, m, opt, rngs, 2, NULL, 0);
        if (rc != D1_OK) d1_adamw_free(opt);
    }
    if (rc != D1_OK) {
        fprintf(stderr, "%s: %s: training state: %s (%s); the stage starts over\n", demo_prog, dir, d1_strerror(rc),
                d1_last_error());
        d1_model_free(m);
        return 0;
    }
    return 1;
}

/* FNV-1a of a file's bytes (0 when it cannot be read): names a shipped model. */
static uint64_t file_hash(const char *path) {
    uint64_t h = 0xcbf29ce484222325ULL;
    int c;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    while ((c = fgetc(f)) != EOF) h = (h ^ (uint64_t)c) * 0x100000001b3ULL;
    fclose(f);
    return h;
}

/* Prints, after the label, each line of text a that text b lacks. */
static void lines_missing(const char *label, const char *a, const char *b) {
    while (*a) {
        size_t la = strcspn(a, "\n");
        const char *p = b;
        int found = 0;
        while (*p && !found) {
            size_t lp = strcspn(p, "\n");
            found = lp == la && memcmp(p, a, la) == 0;
            p += lp + (p[lp] != '\0');
        }
        if (!found) fprintf(stderr, "  %s %.*s\n", label, (int)la, a);
        a += la + (a[la] != '\0');
    }
}

/* A stage is skipped when its output exists, so an OUT must only ever hold
   results of one set of settings. OUT/TASK/settings.txt records them (and,
   without --full, which shipped base/SFT the arms start from); a run with
   other settings stops before touching anything and says what differs.
   Read-only runs (--stage table, tools/demo_measure) pass record = 0: they compare, never write. */
static int settings_match(const settings *S, int record) {
    char path[600], now[2048], old[2048] = "", dir[512];
    int n, k;
    FILE *f;
    n = snprintf(now, sizeof now,
                 "seed %llu\nfull %d\nquick %d\nmodel dim %d layers %d heads %d ffn %d rope_theta %g\n"
                 "base steps %d lr %g joint %d batch %d\nsft steps %d lr %g\n"
                 "rl iters %d prompts %d group %d kv_cache %d threshold %g\nblock %d\n"
                 "eval n %d monitor n %d every %d\n",
                 (unsigned long long)S->seed, S->full, S->quick, S->dim, S->layers, S->heads, S->ffn,
                 (double)S->rope_theta, S->base_steps, (double)S->base_lr, S->base_joint, S->batch, S->sft_steps,
                 (double)S->sft_lr, S->rl_iters, S->rl_prompts, S->rl_group, S->rl_kv_cache, (double)S->rl_threshold,
                 S->block, S->eval_n, S->monitor_n, S->monitor_every);
    if (S->train_mixed) n += snprintf(now + n, sizeof now - (size_t)n, "train precision bf16 mixed\n");
    if (S->bf16) n += snprintf(now + n, sizeof now - (size_t)n, "rl and eval precision bf16\n");
    if (S->variant) n += snprintf(now + n, sizeof now - (size_t)n, "variant %s\n", S->variant);
    for (k = 0; k < 2; k++) {
        const rl_recipe *r = k ? &S->rlx : &S->rl;
        n += snprintf(now + n, sizeof now - (size_t)n,
                      "%s %s: estimator %d kl %d mc %d leave_one_out %d scaled %d inner %d lr %g wd %g beta %g eps %g "
                      "temperature %g\n",
                      k ? "rl after d1" : "rl d1", r->name, r->estimator, r->kl, r->mc, r->loo, r->scale, r->inner,
                      (double)r->lr, (double)r->wd, (double)r->beta, (double)r->eps, (double)r->temperature);
        if (r->remasking != D1_REMASK_LOW_CONFIDENCE) /* (the default adds nothing: earlier OUTs stay valid) */
            n += snprintf(now + n, sizeof now - (size_t)n, "%s remasking %d\n", k ? "rl after d1" : "rl d1",
                          r->remasking);
        if (r->group_masks) /* (likewise) */
            n += snprintf(now + n, sizeof now - (size_t)n, "%s group masks\n", k ? "rl after d1" : "rl d1");
        if (r->dual_clip != 0.0f) /* (likewise) */
            n += snprintf(now + n, sizeof now - (size_t)n, "%s dual clip %g\n", k ? "rl after d1" : "rl d1",
                          (double)r->dual_clip);
    }
    for (k = STAGE_BASE; k <= STAGE_SFT && !S->full; k++) {
        char file[600];
        shipped_dir(dir, sizeof dir, S, k);
        snprintf(file, sizeof file, "%s/model.safetensors", dir);
        n += snprintf(now + n, sizeof now - (size_t)n, "shipped %s %016llx\n", stage_names[k],
                      (unsigned long long)file_hash(file));
    }
    snprintf(dir, sizeof dir, "%s/%s", S->out, S->t->name);
    snprintf(path, sizeof path, "%s/settings.txt", dir);
    if ((f = fopen(path, "rb")) != NULL) {
        size_t got = fread(old, 1, sizeof old - 1, f);
        old[got] = '\0';
        fclose(f);
        if (strcmp(old, now) == 0) return 1;
        fprintf(stderr, "%s: %s holds results made with other settings:\n", demo_prog, dir);
        lines_missing("there:", old, now);
        lines_missing("now:  ", now, old);
        fprintf(stderr, "Use another --out, or remove %s to start over.\n", dir);
        return 0;
    }
    if (!record) return 1;
    if (mkdirs(dir) != 0 || (f = fopen(path, "wb")) == NULL) {
        fprintf(stderr, "%s: cannot write %s\n", demo_prog, path);
        return 0;
    }
    fputs(now, f);
    fclose(f);
    return 1;
}

/* --device cuda: every model of the pipeline moves to the GPU after it is
   made or loaded (a build with -DD1_CUDA: make cuda). */
static int place(const settings *S, d1_model *m) {
    return S->device == D1_DEVICE_CPU ? D1_OK : check(d1_model_set_device(m, S->device), "--device cuda");
}
/* place, then the precision of the RL arms and the evaluation (--precision):
   precision is D1_PRECISION_BF16 (models that only infer) or _BF16_MIXED (a
   policy that trains); FP32 unless the run is in BF16 */
static int place_in(const settings *S, d1_model *m, int precision) {
    int rc = place(S, m);
    if (rc == D1_OK && S->bf16) rc = check(d1_model_set_precision(m, precision), "--precision bf16");
    return rc;
}

/* A progress bar on stderr: stage, step/total, a value, tokens/s, ETA. */
typedef struct progress {
    const char *task, *stage;
    int total, first;          /* first: the step it (re)started from */
    double t0, last;
    int lines;
} progress;

static void progress_show(progress *p, int step, const char *what, double value, double tok_s) {
    double t = now_s(), eta = step > p->first ? (t - p->t0) / (step - p->first) * (p->total - step) : 0.0;
    char bar[21];
    int i, fill = p->total > 0 ? 20 * step / p->total : 20;
    if (step < p->total && t - p->last < (p->lines ? 15.0 : 0.25)) return;
    p->last = t;
    for (i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = '\0';
    fprintf(stderr, "%s%-9s %-7s [%s] %5d/%-5d %s %.4f  %5.1fk tok/s  ETA %dm%02ds%s", p->lines ? "" : "\r",
            p->task, p->stage, bar, step, p->total, what, value, tok_s / 1000.0, (int)eta / 60, (int)eta % 60,
            p->lines || step >= p->total ? "\n" : "");
    fflush(stderr);
}

/* ==== the CSV log and its SVG plot ========================================== */
/* Opens STAGE.csv for appending. A fresh stage writes the header; a resumed
   one keeps only the rows up to the step it resumes from (rewritten through a
   temporary file and a rename, so a run killed right after resuming cannot
   leave the log empty). */
static FILE *csv_open(const char *path, const char *header, int resume_step) {
    FILE *f;
    if (resume_step > 0 && (f = fopen(path, "r")) != NULL) {
        char *keep = NULL, line[1024];
        size_t n = 0;
        while (fgets(line, sizeof line, f)) {
            int step = atoi(line);
            if (n == 0 || step <= resume_step) {
                size_t len = strlen(line);
                keep = (char *)realloc(keep, n + len + 1);
                memcpy(keep + n, line, len + 1);
                n += len;
            }
        }
        fclose(f);
        if (keep) { /* else: an empty log, started afresh below */
            char tmp[600];
            snprintf(tmp, sizeof tmp, "%s.tmp", path);
            if ((f = fopen(tmp, "w")) != NULL) {
                int ok = fputs(keep, f) >= 0;
                ok = fclose(f) == 0 && ok;
                if (ok) rename(tmp, path);
            }
            free(keep);
            return fopen(path, "a");
        }
    }
    f = fopen(path, "w");
    if (f) fprintf(f, "%s\n", header);
    return f;
}

/* Reads column `col` (by header name) against column 0; empty cells skipped. */
static int csv_column(const char *path, const char *col, double *x, double *y, int cap) {
    FILE *f = fopen(path, "r");
    char line[1024];
    int idx = -1, n = 0, i;
    if (!f) return 0;
    if (fgets(line, sizeof line, f)) {
        char *tok = strtok(line, ",\n");
        for (i = 0; tok; i++, tok = strtok(NULL, ",\n"))
            if (strcmp(tok, col) == 0) idx = i;
    }
    while (idx >= 0 && n < cap && fgets(line, sizeof line, f)) {
        char *p = line, *end;
        for (i = 0; i < idx && p; i++) {
            p = strchr(p, ',');
            if (p) p++;
        }
        if (!p || *p == ',' || *p == '\n' || *p == '\0') continue;
        y[n] = strtod(p, &end);
        if (end == p) continue;
        x[n++] = atof(line);
    }
    fclose(f);
    return n;
}

typedef struct series { const char *csv, *col, *label, *color; } series;

/* A line plot of several CSV columns against step, as SVG, drawn by hand. */
static void svg_plot(const char *path, const char *title, const series *s, int n_series) {
    enum { W = 640, H = 360, L = 60, R = 150, TOP = 40, BOT = 50, CAP = 20000 };
    static double xs[CAP], ys[CAP];
    double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
    int k, i, n;
    FILE *f = fopen(path, "w");
    if (!f) return;
    for (k = 0; k < n_series; k++) { /* the ranges */
        n = csv_column(s[k].csv, s[k].col, xs, ys, CAP);
        for (i = 0; i < n; i++) {
            if (xs[i] < x0) x0 = xs[i];
            if (xs[i] > x1) x1 = xs[i];
            if (ys[i] < y0) y0 = ys[i];
            if (ys[i] > y1) y1 = ys[i];
        }
    }
    if (x1 <= x0) x1 = x0 + 1;
    if (y0 > 0 && y1 <= 1.0) y0 = 0; /* rewards and accuracies from 0 */
    if (y1 <= y0) y1 = y0 + 1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"15\">%s</text>\n", L, title);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", L, TOP,
            W - L - R, H - TOP - BOT);
    for (i = 0; i <= 4; i++) { /* axis ticks */
        double fy = y0 + (y1 - y0) * i / 4, fx = x0 + (x1 - x0) * i / 4;
        int py = H - BOT - (H - TOP - BOT) * i / 4, px = L + (W - L - R) * i / 4;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.3g</text>\n", L - 6, py + 4, fy);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n", px, H - BOT + 16, fx);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>\n", (W - R + L) / 2, H - 12);
    for (k = 0; k < n_series; k++) {
        n = csv_column(s[k].csv, s[k].col, xs, ys, CAP);
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", s[k].color);
        for (i = 0; i < n; i++)
            fprintf(f, "%.1f,%.1f ", L + (W - L - R) * (xs[i] - x0) / (x1 - x0),
                    H - BOT - (H - TOP - BOT) * (ys[i] - y0) / (y1 - y0));
        fprintf(f, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", W - R + 10, TOP + 16 + 18 * k,
                s[k].color, s[k].label);
    }
    fprintf(f, "</svg>\n");
    fclose(f);
}

/* ==== data ================================================================== */
/* text -> ids, at most cap of them (want >= 0: exactly want). A text the
   task's vocabulary cannot spell, or of another length, is a mistake in the
   task's table or generator: it is named and the program stops, before
   anything is written past the row. */
static int encode(const task *t, const char *text, int *ids, int cap, int want) {
    int n = tok_encode(t, text, ids, cap);
    if (n < 0 || (want >= 0 && n != want)) {
        fprintf(stderr, "%s: task %s: \"%s\" %s\n", demo_prog, t->name, text,
                n < 0 ? "has a character its vocabulary lacks, or does not fit" : "is not prompt_len tokens long");
        exit(1);
    }
    return n;
}
static void encode_prompt(const task *t, const char *text, int *ids) { encode(t, text, ids, t->prompt_len, t->prompt_len); }

/* Row b of a training batch: prompt ⊕ completion ⊕ <eos> padding to T.
   Returns the tokens before the padding. */
static int encode_row(const task *t, const example *ex, int with_trace, int T, int *row) {
    int n = encode(t, ex->prompt, row, T, t->prompt_len), i, eos = task_token(t, "<eos>");
    n += encode(t, with_trace ? ex->trace : ex->answer, row + n, T - n, -1);
    for (i = n; i < T; i++) row[i] = eos;
    return n;
}

/* The held-out prompts: n distinct test-split prompts, the same for every
   model and seed (their own fixed seed). */
static int heldout_prompts(const task *t, int n, uint64_t seed, int split, int *prompts) {
    d1_rng rng;
    char (*seen)[32] = (char (*)[32])calloc((size_t)n, 32);
    int k = 0, j, tries = 0;
    d1_rng_seed(&rng, seed);
    while (k < n && tries++ < 100 * n) {
        example ex;
        t->example(&rng, split, &ex);
        for (j = 0; j < k && strcmp(seen[j], ex.prompt) != 0; j++) {}
        if (j < k) continue;
        strcpy(seen[k], ex.prompt);
        encode_prompt(t, ex.prompt, prompts + (size_t)k * t->prompt_len);
        k++;
    }
    free(seen);
    return k;
}

/* The reward for d1_grpo_step: decode, then the task's text reward. */
static float reward_tokens(const d1_rollout *ro, void *user) {
    const task *t = (const task *)user;
    char p[64], c[512];
    tok_decode(t, ro->prompt, ro->prompt_len, p, sizeof p);
    tok_decode(t, ro->completion, ro->completion_len, c, sizeof c);
    return t->reward_text(p, c);
}

/* ==== evaluation ============================================================ */
typedef struct score { int n; double mean, se, exact, exact_se; int no_answer; } score;

static double std_error(double sum, double sum2, int n) {
    double mean = sum / n, var = n > 1 ? (sum2 - n * mean * mean) / (n - 1) : 0.0;
    return var > 0 ? sqrt(var / n) : 0.0;
}

/* Greedy decoding as in the paper (temperature 0, low_confidence, steps =
   gen_len / 2, the task's block length), scored with the task's reward:
   mean = the reward (Sudoku: the share of empty cells right), exact = solved,
   no_answer = completions without a complete <answer>…</answer> (reward 0:
   the format, not the puzzle, failed). */
static int evaluate_with(d1_model *m, const settings *S, int gen_len, int block, const int *prompts, int n, int show,
                         score *sc, float threshold, int *passes);
static int evaluate(d1_model *m, const settings *S, int gen_len, const int *prompts, int n, int show, score *sc) {
    return evaluate_with(m, S, gen_len, S->block, prompts, n, show, sc, 0.0f, NULL);
}
/* ... and with Fast-dLLM's threshold decoding (threshold > 0), counting the
   forward passes. */
static int evaluate_with(d1_model *m, const settings *S, int gen_len, int block, const int *prompts, int n, int show,
                         score *sc, float threshold, int *passes) {
    enum { CHUNK = 50 };
    const task *t = S->t;
    d1_sampler_desc sd;
    d1_sample_stats st;
    d1_rng rng;
    int P = t->prompt_len, T = P + gen_len, i, b, rc = D1_OK, eos = task_token(t, "<eos>");
    int *out = (int *)malloc(sizeof(int) * CHUNK * T);
    double s = 0, s2 = 0, e = 0;
    int no_answer = 0;
    sd = d1_sampler_default_desc(gen_len); /* argmax, low-confidence remasking */
    sd.block_len = block ? block : gen_len; sd.steps = gen_len / 2;
    sd.threshold = threshold;
    d1_rng_seed(&rng, 0); /* unused at temperature 0 */
    if (passes) *passes = 0;
    for (i = 0; i < n && rc == D1_OK; i += CHUNK) {
        int B = n - i < CHUNK ? n - i : CHUNK;
        rc = d1_sampler_generate(m, &sd, prompts + (size_t)i * P, B, P, NULL, &rng, out, &st);
        if (passes) *passes += st.forward_passes;
        for (b = 0; b < B && rc == D1_OK; b++) {
            const int *row = out + (size_t)b * T;
            int len = gen_len;
            float r;
            char p[64], c[512], answer[64];
            for (len = 0; len < gen_len && row[P + len] != eos; len++) {}
            tok_decode(t, row, P, p, sizeof p);
            tok_decode(t, row + P, len, c, sizeof c);
            r = t->reward_text(p, c); /* = reward_tokens(row, P, row + P, len, t), decoded once */
            no_answer += !last_answer(c, answer, sizeof answer);
            if (i + b < show) { /* what the model writes: the first few, decoded to the canvas' end */
                tok_decode(t, row + P, gen_len, c, sizeof c);
                fprintf(stderr, "    %s -> %s  (reward %.2f)\n", p, c, r);
            }
            s += r; s2 += (double)r * r; e += r >= 1.0f - 1e-6f;
        }
    }
    free(out);
    sc->n = n;
    sc->mean = s / n; sc->se = std_error(s, s2, n);
    sc->exact = e / n; sc->exact_se = std_error(e, e, n);
    sc->no_answer = no_answer;
    return rc;
}

/* ==== stages 1 and 2: pretraining the base, masked SFT ======================== */
static d1_config model_config(const settings *S) {
    d1_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = task_tokenizer(S->t)->n_vocab; c.dim = S->dim; /* (built in main) */ c.n_layers = S->layers; c.n_heads = S->heads;
    c.ffn_dim = S->ffn; c.max_seq_len = seq_len(S->t);
    /* RoPE theta 10000 (Llama's), not LLaDA's 500000, measured on the Sudoku
       base (conditional loss, drawn lengths, 300 steps, 48 held-out puzzles):
       theta 10000 copies the givens into the answer and scores 0.37 of the
       empty cells; theta 100 and 1000 had not learned to copy at 300 steps
       (0.26, chance level: 0.25), theta 100 not even at 1000 steps (0.29). */
    c.rope_theta = S->rope_theta;
    c.mask_id = task_token(S->t, "<mask>"); c.eos_id = c.pad_id = task_token(S->t, "<eos>");
    return c;
}

/* A stage's files under OUT/TASK/: NAME/final (the finished model), NAME/ckpt
   (the resumable one), NAME.csv and NAME.svg (each buffer holds 512 bytes).
   Returns 1, having said so, when the stage is done already. */
static int stage_paths(const settings *S, int stage, char *final_dir, char *ckpt_dir, char *csv_path, char *svg_path) {
    path_of(final_dir, 512, S, stage_names[stage], "/final");
    path_of(ckpt_dir, 512, S, stage_names[stage], "/ckpt");
    path_of(csv_path, 512, S, stage_names[stage], ".csv");
    path_of(svg_path, 512, S, stage_names[stage], ".svg");
    if (file_exists(final_dir)) {
        fprintf(stderr, "%s %s: done (%s)\n", S->t->name, stage_names[stage], final_dir);
        return 1;
    }
    mkdirs(ckpt_dir);
    return 0;
}

/* A finished model: config.json and model.safetensors, and beside them the
   tokenizer's files (tokenizer.json, tokenizer_config.json,
   special_tokens_map.json), so that the directory loads as it is in d1
   sample and in transformers (AutoTokenizer, AutoModel). */
static int save_model(const task *t, const d1_model *m, const char *dir, int dtype) {
    int rc = check(d1_model_save(m, dir, dtype), dir);
    if (rc == D1_OK) rc = check(d1_tokenizer_save(task_tokenizer(t), &m->config, dir), dir);
    return rc;
}

/* --ship: the stage's model, rounded to BF16, into examples/checkpoints */
static int ship(const settings *S, int stage, d1_model *m) {
    char dir[512];
    shipped_dir(dir, sizeof dir, S, stage);
    return save_model(S->t, m, dir, D1_DTYPE_BF16);
}

/* A training example for base and SFT: the task's own, or the variant's. */
static void train_example(const settings *S, d1_rng *rng, example *ex) {
    if (S->train_example) S->train_example(S, rng, ex);
    else S->t->example(rng, SPLIT_TRAIN, ex);
}

/* base: the masked-diffusion loss conditional on the prompt (d1_sft_loss: the
   prompt is never masked) on prompt ⊕ answer, from random weights; the base
   of a prompted task is a model of the answer given the prompt, and the
   joint loss (d1_pretrain_loss, the prompt masked too) spends capacity on
   generating puzzles (Sudoku, theta 100, 700 steps: held-out reward 0.08 joint, 0.26
   conditional). With --base-joint the base uses the joint loss.
   sft: d1_sft_loss on prompt ⊕ reasoning trace, from base. */
static int stage_train(const settings *S, int stage) {
    const task *t = S->t;
    int sft = stage == STAGE_SFT, total = sft ? S->sft_steps : S->base_steps;
    int P = t->prompt_len, T = seq_len(t), B = S->batch, b, n, step, rc = D1_OK, *tokens, *prompts, *plen;
    char final_dir[512], ckpt_dir[512], csv_path[512], svg_path[512], src[512];
    d1_model m;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_rng rngs[2]; /* 0: the data, 1: the noise of the loss */
    progress pg;
    FILE *csv;
    if (stage_paths(S, stage, final_dir, ckpt_dir, csv_path, svg_path)) { /* done already */
        if (!S->ship) return 0;
        if (check(d1_model_load(&m, final_dir), final_dir) != D1_OK) return 1;
        rc = ship(S, stage, &m);
        d1_model_free(&m);
        return rc == D1_OK ? 0 : 1;
    }

    /* the model: resumed, or from the base (SFT), or fresh */
    if (resume_from(ckpt_dir, &m, &opt, &od, rngs)) {
        if (place(S, &m) != D1_OK) return 1;
        fprintf(stderr, "%s %s: resuming at step %d\n", t->name, stage_names[stage], (int)opt.step);
    } else {
        d1_config cfg = model_config(S);
        if (sft) {
            model_dir(src, sizeof src, S, STAGE_BASE);
            if (check(d1_model_load(&m, src), src) != D1_OK) return 1;
        } else if (check(d1_model_init(&m, &cfg, S->seed), "init") != D1_OK) {
            return 1;
        }
        if (place(S, &m) != D1_OK) return 1;
        od.lr = sft ? S->sft_lr : S->base_lr;
        d1_adamw_init(&opt, &m, &od);
        d1_rng_seed(&rngs[0], S->seed * 1000 + 10 + stage);
        d1_rng_seed(&rngs[1], S->seed * 1000 + 20 + stage);
    }
    if (S->train_mixed && check(d1_model_set_precision(&m, D1_PRECISION_BF16_MIXED), "--train-precision") != D1_OK) {
        d1_adamw_free(&opt);
        d1_model_free(&m);
        return 1;
    }
    csv = csv_open(csv_path, "step,loss,lr,tok_s,heldout", (int)opt.step);
    tokens = (int *)malloc(sizeof(int) * B * T);
    plen = (int *)malloc(sizeof(int) * B);
    prompts = (int *)malloc(sizeof(int) * S->monitor_n * P);
    heldout_prompts(t, S->monitor_n, 777, SPLIT_TEST, prompts);
    pg.task = t->name; pg.stage = stage_names[stage]; pg.total = total; pg.first = (int)opt.step;
    pg.t0 = pg.last = now_s(); pg.lines = S->line_progress || !isatty(2);

    for (step = (int)opt.step; step < total && rc == D1_OK;) {
        float loss = 0.0f;
        double t0 = now_s();
        /* The batch's length is drawn: from the longest completion + one
           <eos> up to the longest evaluation length. With one fixed length
           the model learns where it is by counting the masks around it, not
           from RoPE, and writes its answer at the wrong offsets at any other
           length (Sudoku base trained at gen 64: reward 0.19 at gen 64, 0.00
           at gen 56). A drawn length also trains on less padding. */
        int need = 0, Tb;
        for (b = 0; b < B; b++) {
            example ex;
            train_example(S, &rngs[0], &ex);
            n = encode_row(t, &ex, sft, T, tokens + (size_t)b * T);
            if (n + 1 > need) need = n + 1;
            plen[b] = P;
        }
        Tb = need >= T ? T : need + (int)(d1_rng_u64(&rngs[0]) % (uint64_t)(T - need + 1));
        for (b = 1; b < B; b++) /* repack the rows at length Tb */
            memmove(tokens + (size_t)b * Tb, tokens + (size_t)b * T, sizeof(int) * Tb);
        /* lr: linear warmup over the first 5%, then a cosine down to 10% */
        opt.desc.lr = d1_lr_warmup_cosine(sft ? S->sft_lr : S->base_lr, step, total, total / 20 > 0 ? total / 20 : 1,
                                          0.1);
        d1_model_zero_grad(&m);
        /* both stages: the masked-diffusion loss conditional on the prompt
           (the prompt is never masked), see stage_train's comment */
        rc = sft || !S->base_joint ? d1_sft_loss(&m, tokens, B, Tb, plen, NULL, NULL, &rngs[1], &loss)
                                   : d1_pretrain_loss(&m, tokens, B, Tb, NULL, NULL, &rngs[1], &loss);
        if (rc == D1_OK) rc = d1_adamw_step(&opt, &m, NULL);
        if (check(rc, "train step") != D1_OK) break;
        step++;
        fprintf(csv, "%d,%.5f,%.6g,%.0f,", step, loss, opt.desc.lr, B * Tb / (now_s() - t0));
        if (step % S->train_monitor_every == 0 || step == total) {
            score sc;
            evaluate(&m, S, t->gen_lens[0], prompts, S->monitor_n, 1, &sc);
            fprintf(csv, "%.4f", sc.mean);
            fprintf(stderr, "%s%-9s %-7s step %d: held-out reward %.3f, exact %.3f (%d prompts)\n",
                    pg.lines ? "" : "\n", t->name, stage_names[stage], step, sc.mean, sc.exact, sc.n);
        }
        fprintf(csv, "\n");
        if (step % (S->save_every * 20) == 0) {
            fflush(csv);
            /* the model and its training state as one unit: a kill leaves one valid pair */
            if ((rc = check(d1_checkpoint_save(ckpt_dir, &m, D1_DTYPE_F32, &opt, rngs, 2, NULL), ckpt_dir)) != D1_OK)
                break;
        }
        progress_show(&pg, step, "loss", loss, B * Tb / (now_s() - t0));
    }
    fclose(csv);
    if (rc == D1_OK) rc = save_model(t, &m, final_dir, D1_DTYPE_F32);
    if (rc == D1_OK && S->ship) rc = ship(S, stage, &m);
    {
        series s[2] = {{csv_path, "loss", "loss", "#1f77b4"}, {csv_path, "heldout", "held-out reward", "#d62728"}};
        char title[128];
        snprintf(title, sizeof title, "%s: %s", t->name, sft ? "masked SFT" : "pretraining the base");
        svg_plot(svg_path, title, s, 1);
        snprintf(svg_path + strlen(svg_path) - 4, 64, "-heldout.svg");
        svg_plot(svg_path, title, s + 1, 1);
    }
    free(tokens); free(plen); free(prompts);
    d1_adamw_free(&opt);
    d1_model_free(&m);
    return rc == D1_OK ? 0 : 1;
}

/* ==== stage 3: diffu-GRPO ===================================================== */
/* How the arms sample their rollouts (and tools/demo_measure's headroom): d1's
   (temperature 0.9, low_confidence, steps = gen_len / 2) with the run's
   block, the prefix KV cache on the CPU when there are several blocks (it is
   refreshed at each block's start; with one block it would keep the
   prompt's keys from the all-mask canvas for every step, to save 16 of 72
   positions), and rl_threshold (0: d1's schedule). */
static d1_sampler_desc rollout_sampler(const settings *S, int gen_len) {
    d1_sampler_desc sd = d1_grpo_default_desc(gen_len).sampler;
    sd.block_len = S->block ? S->block : gen_len;
    sd.kv_cache = S->device == D1_DEVICE_CPU && sd.block_len < gen_len ? S->rl_kv_cache : D1_KV_NONE;
    sd.threshold = S->rl_threshold;
    return sd;
}

/* One RL arm: from the base (+diffu-GRPO) or from the SFT model (d1), with
   d1's recipe or (the x- stages) a successor's. The reference policy of the
   KL term is a frozen copy of the starting model. */
static int stage_rl(const settings *S, int stage) {
    const task *t = S->t;
    const rl_recipe *rr = recipe_of(S, stage);
    int from = start_of(stage), P = t->prompt_len, it, i, rc = D1_OK;
    int gen_len = t->gen_lens[0], *prompts, *heldout;
    char final_dir[512], ckpt_dir[512], csv_path[512], svg_path[512], src[512], rn[64];
    d1_model policy, ref;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_grpo_desc gd = d1_grpo_default_desc(gen_len);
    d1_reward reward;
    d1_rng rngs[2]; /* 0: the prompts, 1: rollouts and masks */
    progress pg;
    FILE *csv;
    if (stage_paths(S, stage, final_dir, ckpt_dir, csv_path, svg_path)) return 0; /* done already */
    model_dir(src, sizeof src, S, from);
    if (check(d1_model_load(&ref, src), src) != D1_OK || place_in(S, &ref, D1_PRECISION_BF16) != D1_OK) return 1;

    /* d1's optimizer for RL: AdamW (0.9, 0.99), clip 0.2; lr and weight decay the recipe's */
    od.lr = rr->lr; od.beta1 = 0.9f; od.beta2 = 0.99f; od.weight_decay = rr->wd; od.grad_clip = 0.2f;
    if (resume_from(ckpt_dir, &policy, &opt, &od, rngs)) {
        if (place_in(S, &policy, D1_PRECISION_BF16_MIXED) != D1_OK) return 1;
        fprintf(stderr, "%s %s: resuming at iteration %d\n", t->name, stage_names[stage], (int)(opt.step / rr->inner));
    } else {
        if (check(d1_model_load(&policy, src), src) != D1_OK || place_in(S, &policy, D1_PRECISION_BF16_MIXED) != D1_OK)
            return 1;
        d1_adamw_init(&opt, &policy, &od);
        d1_rng_seed(&rngs[0], S->seed * 1000 + 30 + stage);
        d1_rng_seed(&rngs[1], S->seed * 1000 + 40 + stage);
    }

    /* d1's settings (d1_grpo_default_desc): G = 6, eps 0.5, beta 0.04,
       p_mask_prompt 0.15, rollouts at temperature 0.9, low_confidence,
       steps = gen_len / 2; the block the run's; then the recipe's */
    reward.name = "correctness"; reward.fn = reward_tokens; reward.weight = 1.0f; reward.user = (void *)t;
    gd.rewards = &reward; gd.n_rewards = 1;
    gd.group_size = S->rl_group;
    gd.sampler = rollout_sampler(S, gen_len);
    gd.sampler.temperature = rr->temperature;
    gd.sampler.remasking = rr->remasking;
    gd.inner_steps = rr->inner; gd.beta = rr->beta; gd.estimator = rr->estimator; gd.scale_rewards = rr->scale;
    gd.kl = rr->kl; gd.mc_draws = rr->mc; gd.leave_one_out = rr->loo; gd.clip_eps = rr->eps;
    gd.group_masks = rr->group_masks; gd.dual_clip = rr->dual_clip;
    if (gd.estimator == D1_LOGP_BLOCK) { /* SPG: its objective, no KL, the EUBO/ELBO mix of its Sudoku recipe */
        gd.objective = D1_GRPO_SPG; gd.beta = 0.0f; gd.eubo_beta = 1.0f; gd.eubo_mix = 0.5f;
    }

    it = (int)(opt.step / rr->inner);
    csv = csv_open(csv_path, "step,reward,reward_std,zero_std_frac,loss,kl,clip_frac,grad_norm,completion_len,"
                             "t_generate,t_logp,t_update,heldout", it);
    prompts = (int *)malloc(sizeof(int) * S->rl_prompts * P);
    heldout = (int *)malloc(sizeof(int) * S->monitor_n * P);
    heldout_prompts(t, S->monitor_n, 777, SPLIT_TEST, heldout);
    pg.task = t->name; pg.stage = stage_names[stage]; pg.total = S->rl_iters; pg.first = it;
    pg.t0 = pg.last = now_s(); pg.lines = S->line_progress || !isatty(2);
    if (it == 0) { /* step 0: where the arm starts */
        score sc;
        evaluate(&policy, S, gen_len, heldout, S->monitor_n, 0, &sc);
        fprintf(csv, "0,,,,,,,,,,,,%.4f\n", sc.mean);
    }
    while (it < S->rl_iters && rc == D1_OK) {
        d1_grpo_stats st;
        double t0 = now_s();
        if (S->arm_prompts) S->arm_prompts(S, it, &rngs[0], prompts);
        else
            for (i = 0; i < S->rl_prompts; i++) { /* a fresh puzzle every time */
                example ex;
                t->example(&rngs[0], SPLIT_TRAIN, &ex);
                encode_prompt(t, ex.prompt, prompts + (size_t)i * P);
            }
        rc = check(d1_grpo_step(&policy, &ref, &opt, &gd, prompts, S->rl_prompts, P, NULL, &rngs[1], &st), "grpo");
        if (rc != D1_OK) break;
        it++;
        fprintf(csv, "%d,%.4f,%.4f,%.3f,%.5f,%.5f,%.4f,%.4f,%.2f,%.2f,%.2f,%.2f,", it, st.reward_mean, st.reward_std,
                st.zero_std_frac, st.loss, st.kl, st.clip_frac, st.grad_norm, st.completion_len, st.t_generate,
                st.t_logp, st.t_update);
        if (it % S->monitor_every == 0 || it == S->rl_iters) {
            score sc;
            evaluate(&policy, S, gen_len, heldout, S->monitor_n, 0, &sc);
            fprintf(csv, "%.4f", sc.mean);
        }
        fprintf(csv, "\n");
        if (it % S->save_every == 0) {
            fflush(csv);
            if ((rc = check(d1_checkpoint_save(ckpt_dir, &policy, D1_DTYPE_F32, &opt, rngs, 2, NULL), ckpt_dir)) !=
                D1_OK)
                break;
        }
        progress_show(&pg, it, "reward", st.reward_mean,
                      (double)S->rl_prompts * S->rl_group * (P + gen_len) * gen_len / 2 / (now_s() - t0));
    }
    fclose(csv);
    if (rc == D1_OK) rc = save_model(t, &policy, final_dir, D1_DTYPE_F32);
    {
        series s[2] = {{csv_path, "reward", "rollout reward", "#1f77b4"},
                       {csv_path, "heldout", "held-out (T=0)", "#d62728"}};
        char title[128];
        snprintf(title, sizeof title, "%s: %s from %s", t->name, row_name(S, stage, rn, sizeof rn), stage_names[from]);
        svg_plot(svg_path, title, s, 2);
    }
    free(prompts); free(heldout);
    d1_adamw_free(&opt);
    d1_model_free(&policy);
    d1_model_free(&ref);
    return rc == D1_OK ? 0 : 1;
}

/* ==== stage 4: evaluation and the table ======================================= */
/* Evaluates one row at every generation length; OUT/TASK/eval/ROW-LEN.txt
   holds each result (kept: a rerun skips what is done). */
/* The evaluations of each row. The table's: the test split (no solution
   grid seen in training) at each generation length, with the run's block.
   Beside it: d1's own protocol (SPLIT_ANY: puzzles from every grid, as d1's
   test set has them) and, when the run's block is not the task's 8, the
   block-8 decoding of the earlier demo (both at the first length). */
typedef struct eval_cell { int split, gen_len, block; } eval_cell;
enum { MAX_CELLS = 6 };
static int eval_cells(const settings *S, eval_cell *c) {
    const task *t = S->t;
    int g, n = 0;
    for (g = 0; g < t->n_gen_lens; g++) { c[n].split = SPLIT_TEST; c[n].gen_len = t->gen_lens[g]; c[n++].block = S->block; }
    c[n].split = SPLIT_ANY; c[n].gen_len = t->gen_lens[0]; c[n++].block = S->block;
    if (S->block != t->block_len) { c[n].split = SPLIT_TEST; c[n].gen_len = t->gen_lens[0]; c[n++].block = t->block_len; }
    return n;
}
/* OUT/TASK/eval/ROW-GENLEN[-any][-bBLOCK].txt: the table's cells keep the plain name */
static void eval_path(char *buf, size_t cap, const settings *S, int stage, const eval_cell *c) {
    char extra[32] = "";
    if (c->split == SPLIT_ANY) strcat(extra, "-any");
    if (c->block != S->block) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "-b%d", c->block);
    snprintf(buf, cap, "%s/%s/eval/%s-%d%s.txt", S->out, S->t->name, stage_names[stage], c->gen_len, extra);
}
static int read_score(const char *path, score *sc) {
    FILE *e = fopen(path, "r");
    int ok = e && fscanf(e, "%d %lf %lf %lf %lf %d", &sc->n, &sc->mean, &sc->se, &sc->exact, &sc->exact_se,
                         &sc->no_answer) == 6;
    if (e) fclose(e);
    return ok;
}

static int stage_eval(const settings *S, int stage) {
    const task *t = S->t;
    char dir[512], path[512];
    int i, n_cells, *prompts[2], n[2];
    eval_cell cells[MAX_CELLS];
    d1_model m;
    snprintf(dir, sizeof dir, "%s/%s/eval", S->out, t->name);
    mkdirs(dir);
    model_dir(dir, sizeof dir, S, stage);
    if (!file_exists(dir)) { /* an arm not run (yet): its row stays "-" */
        fprintf(stderr, "%s %s: no model at %s, not evaluated\n", t->name, stage_names[stage], dir);
        return 0;
    }
    if (check(d1_model_load(&m, dir), dir) != D1_OK || place_in(S, &m, D1_PRECISION_BF16) != D1_OK) return 1;
    for (i = 0; i < 2; i++) { /* the test split's prompts and d1's protocol's */
        prompts[i] = (int *)malloc(sizeof(int) * S->eval_n * t->prompt_len);
        n[i] = heldout_prompts(t, S->eval_n, 2024, i == 0 ? SPLIT_TEST : SPLIT_ANY, prompts[i]);
    }
    n_cells = eval_cells(S, cells);
    for (i = 0; i < n_cells; i++) {
        const eval_cell *c = &cells[i];
        int k = c->split == SPLIT_ANY;
        score sc;
        FILE *f;
        double t0 = now_s();
        eval_path(path, sizeof path, S, stage, c);
        if (file_exists(path)) continue;
        if (evaluate_with(&m, S, c->gen_len, c->block, prompts[k], n[k], i == 0 ? 2 : 0, &sc, 0.0f, NULL) != D1_OK)
            break;
        if ((f = fopen(path, "w")) != NULL) {
            fprintf(f, "%d %.6f %.6f %.6f %.6f %d\n", sc.n, sc.mean, sc.se, sc.exact, sc.exact_se, sc.no_answer);
            fclose(f);
        }
        fprintf(stderr, "%-9s eval    %-8s gen_len %3d block %2d %-5s: reward %.3f ± %.3f, exact %.3f ± %.3f, no answer %d (%d prompts, %.0fs)\n",
                t->name, stage_names[stage], c->gen_len, c->block ? c->block : c->gen_len, k ? "any" : "test", sc.mean,
                sc.se, sc.exact, sc.exact_se, sc.no_answer, n[k], now_s() - t0);
    }
    free(prompts[0]); free(prompts[1]);
    d1_model_free(&m);
    return 0;
}

/* Paper's Table 1, shaped: rows base, +SFT, +diffu-GRPO, d1; columns the
   generation lengths. Sudoku shows the share of empty cells right and the
   exact solves; Countdown the exact answers. Written to OUT/TASK/table.md. */
/* A cell of the table: cells as % ± standard error (Sudoku: empty cells right /
   puzzles solved; Countdown: exact answers), "-" when not evaluated. */
static void cell_text(const settings *S, int stage, const eval_cell *c, char *cell, size_t cap, score *sc) {
    char path[512];
    eval_path(path, sizeof path, S, stage, c);
    if (!read_score(path, sc)) { snprintf(cell, cap, "-"); sc->n = 0; }
    else if (S->t->cells)
        snprintf(cell, cap, "%.1f+-%.1f / %.1f+-%.1f", 100 * sc->mean, 100 * sc->se, 100 * sc->exact, 100 * sc->exact_se);
    else
        snprintf(cell, cap, "%.1f +- %.1f", 100 * sc->exact, 100 * sc->exact_se);
}

static void print_table(const settings *S) {
    const task *t = S->t;
    char path[512], cell[64], blk[16];
    int r, i, col, n = 0, n_cells, no_answer[N_STAGES][MAX_CELLS];
    eval_cell cells[MAX_CELLS];
    FILE *md;
    n_cells = eval_cells(S, cells);
    snprintf(blk, sizeof blk, S->block ? "%d" : "= gen_len", S->block);
    snprintf(path, sizeof path, "%s/%s/table.md", S->out, t->name);
    md = fopen(path, "w");
    for (col = 0; col < 2; col++) {
        FILE *f = col == 0 ? stdout : md;
        if (!f) continue;
        fprintf(f, "\n%s: %s, %% ± standard error, held-out prompts (no solution seen in training), temperature 0, "
                   "block %s\n\n| model         |", t->name, t->cells ? "empty cells right / puzzles solved" : "exact answers", blk);
        for (i = 0; i < n_cells; i++) {
            const eval_cell *c = &cells[i];
            if (c->split == SPLIT_TEST && c->block == S->block) snprintf(cell, sizeof cell, "gen_len %d", c->gen_len);
            else if (c->split == SPLIT_ANY) snprintf(cell, sizeof cell, "d1's split, gen %d", c->gen_len);
            else snprintf(cell, sizeof cell, "block %d, gen %d", c->block, c->gen_len);
            fprintf(f, " %-21s |", cell);
        }
        fprintf(f, "\n|---------------|");
        for (i = 0; i < n_cells; i++) fprintf(f, "-----------------------|");
        fprintf(f, "\n");
        for (r = 0; r < N_STAGES; r++) {
            char rn[64];
            fprintf(f, "| %-13s |", row_name(S, r, rn, sizeof rn));
            for (i = 0; i < n_cells; i++) {
                score sc;
                cell_text(S, r, &cells[i], cell, sizeof cell, &sc);
                no_answer[r][i] = sc.n ? sc.no_answer : -1;
                if (sc.n) n = sc.n;
                fprintf(f, " %-21s |", cell);
            }
            fprintf(f, "\n");
        }
        fprintf(f, "(%d prompts per cell; \"d1's split\": %s%s)\n", n, t->any_split,
                S->block != t->block_len ? "; \"block 8\": the earlier demo's decoding" : "");
        /* how many completions had no <answer>...</answer> at all: a format
           failure, as opposed to a wrong answer */
        fprintf(f, "completions without an answer:");
        for (r = 0; r < N_STAGES; r++) {
            char rn[64];
            fprintf(f, "%s %s", r ? "," : "", row_name(S, r, rn, sizeof rn));
            for (i = 0; i < n_cells; i++) {
                if (no_answer[r][i] >= 0) fprintf(f, "%s%d", i ? "/" : " ", no_answer[r][i]);
                else fprintf(f, "%s-", i ? "/" : " ");
            }
        }
        fprintf(f, "\n");
    }
    if (md) fclose(md);
}

/* OUT/summary.json: every evaluated cell of every task in this run, for
   scripts: task, row, split ("test": no solution grid seen in training;
   "any": d1's protocol), gen_len, block, prompts, mean reward and its
   standard error, exact share and its standard error, answers missing;
   and the precision of the RL arms and evaluation ("bf16" or "f32"). */
static void write_summary(const settings *S, int n_tasks) {
    char path[512], tmp[520];
    int k, r, i, first = 1;
    FILE *f;
    snprintf(path, sizeof path, "%s/summary.json", S[0].out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (mkdirs(S[0].out) != 0 || (f = fopen(tmp, "w")) == NULL) return;
    fprintf(f, "{\"precision\": \"%s\", \"cells\": [", S[0].bf16 ? "bf16" : "f32");
    for (k = 0; k < n_tasks; k++) {
        eval_cell cells[MAX_CELLS];
        int n_cells = eval_cells(&S[k], cells);
        for (r = 0; r < N_STAGES; r++)
            for (i = 0; i < n_cells; i++) {
                char p2[512], rn[64];
                score sc;
                eval_path(p2, sizeof p2, &S[k], r, &cells[i]);
                if (!read_score(p2, &sc)) continue;
                fprintf(f, "%s\n  {\"task\": \"%s\", \"row\": \"%s\", \"split\": \"%s\", \"gen_len\": %d, \"block\": %d, "
                           "\"n\": %d, \"mean\": %.6f, \"se\": %.6f, \"exact\": %.6f, \"exact_se\": %.6f, \"no_answer\": %d}",
                        first ? "" : ",", S[k].t->name, row_name(&S[k], r, rn, sizeof rn), cells[i].split == SPLIT_ANY ? "any" : "test",
                        cells[i].gen_len, cells[i].block ? cells[i].block : cells[i].gen_len, sc.n, sc.mean, sc.se,
                        sc.exact, sc.exact_se, sc.no_answer);
                first = 0;
            }
    }
    fprintf(f, "\n]}\n");
    fclose(f);
    rename(tmp, path);
}

/* ==== running stages in parallel: one process per core ======================== */
typedef struct job { int (*fn)(const settings *, int); const settings *S; int arg; } job;

/* A job list, each `fn(S, arg)` pair run in its own process, at most max_par
   at once. Returns the number that failed. */
static int run_jobs(const job *jobs, int n, int max_par) {
    int i, running = 0, failed = 0, status;
    if (max_par <= 1 || n == 1) {
        for (i = 0; i < n; i++) failed += jobs[i].fn(jobs[i].S, jobs[i].arg) != 0;
        return failed;
    }
    for (i = 0; i < n; i++) {
        pid_t pid;
        if (running == max_par) {
            wait(&status);
            failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
            running--;
        }
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
            settings child = *jobs[i].S;
            child.line_progress = 1;
            _exit(jobs[i].fn(&child, jobs[i].arg));
        }
        if (pid < 0) { failed++; continue; }
        running++;
    }
    while (running-- > 0) {
        wait(&status);
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    return failed;
}

/* An RL arm, then the evaluation of its start and its result: the arm from
   the base evaluates base and +diffu-GRPO, the arm from SFT evaluates +SFT and d1. */
static int arm_and_eval(const settings *S, int stage) {
    if (stage_rl(S, stage) != 0) return 1;
    return stage_eval(S, start_of(stage)) | stage_eval(S, stage);
}

/* OUT/TASK/rl-heldout.svg: every RL arm's held-out reward (the 48-prompt
   monitor, temperature 0) against the iteration, one line per arm. */
static void plot_arms(const settings *S) {
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
    char csv[4][512], label[4][96], rn[64], path[512], title[128];
    series s[4];
    int k, n = 0;
    for (k = STAGE_RL_BASE; k < N_STAGES; k++) {
        path_of(csv[n], sizeof csv[n], S, stage_names[k], ".csv");
        if (!file_exists(csv[n])) continue;
        snprintf(label[n], sizeof label[n], "%s", row_name(S, k, rn, sizeof rn));
        s[n].csv = csv[n]; s[n].col = "heldout"; s[n].label = label[n]; s[n].color = colors[n];
        n++;
    }
    if (n == 0) return;
    path_of(path, sizeof path, S, "rl-heldout", ".svg");
    snprintf(title, sizeof title, "%s: held-out reward (48 prompts) per RL iteration", S->t->name);
    svg_plot(path, title, s, n);
}

static int base_and_sft(const settings *S, int unused) {
    (void)unused;
    return stage_train(S, STAGE_BASE) || stage_train(S, STAGE_SFT);
}

/* ==== main ==================================================================== */
/* ==== the command line ====================================================== */
/* Every flag but the RL recipe's (recipe_flag), as one table that the parser
   walks and usage() prints: FLAG sets its int to 1; INT, FLOAT, U64 and STR
   read the next argument; CHOICE maps it through its "a|b|..." list to 0, 1,
   ... Values are checked after parsing (cli_check). */
typedef struct cli {
    const char *task, *stage, *out, *block;
    int block_n;       /* parsed from block (-1: not given) */
    float rope_theta, base_lr, sft_lr;
    int full, quick, ship, base_joint, base_steps, sft_steps, rl_iters, monitor;
    int dim, layers, rl_prompts, rl_group, device, train_mixed, precision; /* precision: PRECISION_* */
    uint64_t seed;
} cli;
enum { PRECISION_AUTO, PRECISION_F32, PRECISION_BF16 }; /* --precision's choices, in its order */
enum { OPT_FLAG, OPT_INT, OPT_FLOAT, OPT_POSITIVE, OPT_U64, OPT_STR, OPT_CHOICE }; /* POSITIVE: a float > 0 */
typedef struct cli_option {
    const char *name;
    int kind;
    size_t at;         /* offsetof(cli, the field) */
    const char *value; /* what it takes (the choices for a CHOICE), NULL for a FLAG */
    const char *note;  /* a line of its own in usage(), or NULL */
} cli_option;
#define CLI(field) offsetof(cli, field)
static const cli_option cli_options[] = {
    {"--task", OPT_STR, CLI(task), "NAME|all", NULL},
    {"--stage", OPT_STR, CLI(stage), "all|base|sft|rl|rl-base|d1|x|x-rl-base|x-d1|eval|table", NULL},
    {"--full", OPT_FLAG, CLI(full), NULL, NULL},
    {"--quick", OPT_FLAG, CLI(quick), NULL, NULL},
    {"--ship", OPT_FLAG, CLI(ship), NULL, NULL},
    {"--seed", OPT_U64, CLI(seed), "N", NULL},
    {"--out", OPT_STR, CLI(out), "DIR", NULL},
    {"--rope-theta", OPT_FLOAT, CLI(rope_theta), "X", NULL},
    {"--base-steps", OPT_INT, CLI(base_steps), "N", NULL},
    {"--sft-steps", OPT_INT, CLI(sft_steps), "N", NULL},
    {"--base-lr", OPT_POSITIVE, CLI(base_lr), "X", NULL},
    {"--sft-lr", OPT_POSITIVE, CLI(sft_lr), "X", NULL},
    {"--rl-iters", OPT_INT, CLI(rl_iters), "N", NULL},
    {"--monitor", OPT_INT, CLI(monitor), "N", NULL},
    {"--base-joint", OPT_FLAG, CLI(base_joint), NULL, NULL},
    {"--rl-prompts", OPT_INT, CLI(rl_prompts), "N", NULL},
    {"--rl-group", OPT_INT, CLI(rl_group), "G", NULL},
    {"--device", OPT_CHOICE, CLI(device), "cpu|cuda", NULL},
    {"--dim", OPT_INT, CLI(dim), "N", "--dim N: a multiple of 32 (heads of 32, ffn 11/4 of dim)"},
    {"--layers", OPT_INT, CLI(layers), "N", NULL},
    {"--block", OPT_STR, CLI(block), "N|all", NULL},
    {"--train-precision", OPT_CHOICE, CLI(train_mixed), "f32|mixed", "--train-precision: base and SFT in FP32, or with BF16 operands in the matmuls"},
    {"--precision", OPT_CHOICE, CLI(precision), "auto|f32|bf16",
     "--precision: the RL arms and the evaluation in BF16 (rollouts, log-prob passes, evaluation; the arms'\n"
     "    updates with BF16 operands, FP32 weights), all in FP32, or auto (the default): bf16 where this CPU\n"
     "    has a BF16 SIMD kernel (d1_bf16_simd_available: AVX512-BF16, NEON BF16), else f32"},
};

static void usage(void) {
    size_t i, col = 15;
    fprintf(stderr, "usage: d1_demo");
    for (i = 0; i < sizeof cli_options / sizeof cli_options[0]; i++) {
        const cli_option *o = &cli_options[i];
        size_t w = strlen(o->name) + (o->value ? strlen(o->value) + 1 : 0) + 3;
        if (col + w > 100) { fprintf(stderr, "\n              "); col = 14; }
        fprintf(stderr, " [%s%s%s]", o->name, o->value ? " " : "", o->value ? o->value : "");
        col += w;
    }
    fprintf(stderr, "\n");
    fprintf(stderr, "  --task NAME: one of");
    for (i = 0; i < N_TASKS; i++) fprintf(stderr, " %s", tasks[i].name);
    fprintf(stderr, " (examples/tasks.h's table)\n");
    for (i = 0; i < sizeof cli_options / sizeof cli_options[0]; i++)
        if (cli_options[i].note) fprintf(stderr, "  %s\n", cli_options[i].note);
    fprintf(stderr, "  the RL recipes: --rl-NAME for the paper's arms (d1's recipe), --x-NAME for the successor's\n"
                    "  (x-rl-base, x-d1; --x-estimator first: it loads that estimator's recipe, default elbo = ESPO):\n"
                    "               [--rl-estimator|--x-estimator one-step|coupled|partial|elbo|trajectory|spg]\n"
                    "               [--rl-kl k3|k2|k1] [--rl-mc N] [--rl-loo] [--rl-inner N] [--rl-lr X] [--rl-wd X]\n"
                    "               [--rl-beta X] [--rl-eps X] [--rl-temperature X] [--rl-advantages scaled|centered]\n"
                    "               [--rl-remasking low_confidence|random] (the rollouts' order of reveals)\n"
                    "               [--rl-group-masks] (a group's rows share their log-prob masks)\n"
                    "               [--rl-dual-clip C] (C > 1: for A < 0 no gradient once the ratio passes C)\n"
                    "               (and --x-kl ... alike)\n");
}

/* One table flag at argv[i] into c: the arguments it took (1 or 2), 0 when
   argv[i] is none of the table's, -1 for a missing or malformed value. */
static int cli_option_at(cli *c, int argc, char **argv, int i) {
    size_t k;
    for (k = 0; k < sizeof cli_options / sizeof cli_options[0]; k++) {
        const cli_option *o = &cli_options[k];
        char *field = (char *)c + o->at, *end;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], o->name)) continue;
        if (o->kind == OPT_FLAG) { *(int *)field = 1; return 1; }
        if (!v) return -1;
        switch (o->kind) {
        case OPT_INT: {
            long x = strtol(v, &end, 10);
            if (end == v || *end || x < INT_MIN || x > INT_MAX) return -1;
            *(int *)field = (int)x;
            break;
        }
        case OPT_FLOAT: *(float *)field = (float)strtod(v, &end); if (end == v || *end) return -1; break;
        case OPT_POSITIVE:
            *(float *)field = (float)strtod(v, &end);
            if (end == v || *end || !(*(float *)field > 0.0f)) return -1; /* 0, negative, nan */
            break;
        case OPT_U64: *(uint64_t *)field = strtoull(v, &end, 10); if (end == v || *end) return -1; break;
        case OPT_STR: *(const char **)field = v; break;
        default: { /* OPT_CHOICE: the index of v in "a|b|..." */
            const char *p = o->value;
            int n = 0;
            size_t l = strlen(v);
            for (;;) {
                size_t w = strcspn(p, "| ");
                if (w == l && !strncmp(p, v, l)) break;
                if (p[w] != '|') return -1;
                p += w + 1;
                n++;
            }
            *(int *)field = n;
        }
        }
        return 2;
    }
    return 0;
}

/* The estimator names of --rl-estimator / --x-estimator; -1 if unknown. */
static int estimator_of(const char *e) {
    static const char *const names[] = {"one-step", "coupled", "partial", "elbo", "trajectory", "spg"};
    static const int codes[] = {D1_LOGP_ONE_STEP, D1_LOGP_COUPLED, D1_LOGP_PARTIAL, D1_LOGP_ELBO,
                                D1_LOGP_TRAJECTORY, D1_LOGP_BLOCK};
    int i;
    for (i = 0; i < 6; i++)
        if (!strcmp(e, names[i])) return codes[i];
    return -1;
}

/* One recipe flag, NAME without its --rl- / --x- prefix, into r. Returns the
   arguments it took (1 for a valueless flag, 2 with a value), 0 when NAME is
   no recipe flag, -1 for a bad value. --rl-estimator changes only the
   estimator of d1's recipe; --x-estimator takes the successor's whole
   recipe (recipe_after_d1), so give it before the other --x- flags. */
static int recipe_flag(const char *name, const char *val, int is_x, rl_recipe *r) {
    if (!strcmp(name, "loo")) { r->loo = 1; return 1; }
    if (!strcmp(name, "scale-rewards")) { r->scale = 1; return 1; }
    if (!strcmp(name, "group-masks")) { r->group_masks = 1; return 1; }
    if (!val) return 0;
    if (!strcmp(name, "estimator")) {
        int e = estimator_of(val);
        if (e < 0) return -1;
        if (is_x) *r = recipe_after_d1(e);
        else r->estimator = e;
    } else if (!strcmp(name, "kl")) {
        if (strlen(val) != 2 || val[0] != 'k' || val[1] < '1' || val[1] > '3') return -1;
        r->kl = val[1] == '3' ? D1_KL_K3 : val[1] == '2' ? D1_KL_K2 : D1_KL_K1;
    } else if (!strcmp(name, "advantages")) {
        if (strcmp(val, "scaled") && strcmp(val, "centered")) return -1;
        r->scale = !strcmp(val, "scaled");
    } else if (!strcmp(name, "mc")) r->mc = atoi(val);
    else if (!strcmp(name, "inner")) r->inner = atoi(val);
    else if (!strcmp(name, "lr")) r->lr = (float)atof(val);
    else if (!strcmp(name, "wd")) r->wd = (float)atof(val);
    else if (!strcmp(name, "beta")) r->beta = (float)atof(val);
    else if (!strcmp(name, "eps")) r->eps = (float)atof(val);
    else if (!strcmp(name, "temperature")) r->temperature = (float)atof(val);
    else if (!strcmp(name, "dual-clip")) {
        char *end;
        r->dual_clip = (float)strtod(val, &end);
        if (end == val || *end || !(r->dual_clip > 1.0f)) return -1;
    }
    else if (!strcmp(name, "remasking")) {
        if (strcmp(val, "low_confidence") && strcmp(val, "random")) return -1;
        r->remasking = !strcmp(val, "random") ? D1_REMASK_RANDOM : D1_REMASK_LOW_CONFIDENCE;
    } else return 0;
    return r->inner >= 1 && r->lr > 0.0f && r->wd >= 0.0f && r->beta >= 0.0f && r->eps > 0.0f && r->mc >= 0 &&
                   r->temperature >= 0.0f
               ? 2
               : -1;
}

/* argv -> c and the two recipes. Returns -1 to go on, else the exit status
   (0 after --help, 2 on a usage error, having printed the usage). */
static int cli_parse(int argc, char **argv, cli *c, rl_recipe *rl, rl_recipe *rlx) {
    int i;
    memset(c, 0, sizeof *c); /* 0: the defaults */
    c->task = "all"; c->stage = "all"; c->out = "build/demo"; c->seed = 1; c->base_joint = -1; c->dim = -1;
    c->block_n = -1;
    *rl = recipe_d1();
    *rlx = recipe_after_d1(D1_LOGP_ELBO);
    for (i = 1; i < argc; i++) { /* the recipe's flags, then the table's */
        int is_x = !strncmp(argv[i], "--x-", 4), took = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(); return 0; }
        if (is_x || !strncmp(argv[i], "--rl-", 5))
            took = recipe_flag(argv[i] + (is_x ? 4 : 5), i + 1 < argc ? argv[i + 1] : NULL, is_x, is_x ? rlx : rl);
        if (took == 0) took = cli_option_at(c, argc, argv, i);
        if (took <= 0) { usage(); return 2; }
        i += took - 1;
    }
    /* what the table cannot check */
    if (c->dim != -1 && (c->dim < 32 || c->dim % 32)) { usage(); return 2; }
    if (c->block) {
        c->block_n = !strcmp(c->block, "all") ? 0 : atoi(c->block);
        if (c->block_n < 0 || (c->block_n == 0 && strcmp(c->block, "all"))) { usage(); return 2; }
    }
    return -1;
}

/* The settings of each task the command line names, into S[N_TASKS]: the task's
   defaults, then what the flags set. Returns how many. */
static int demo_settings(const cli *c, const rl_recipe *rl, const rl_recipe *rlx, settings *S) {
    int k, n = 0;
    for (k = 0; k < N_TASKS; k++) {
        const task *t = strcmp(c->task, "all") == 0 ? &tasks[k] : k == 0 ? task_find(c->task) : NULL;
        if (!t) continue;
        S[n] = settings_default(t, c->quick);
        if (c->rope_theta > 0.0f) S[n].rope_theta = c->rope_theta;
        if (c->base_steps > 0) S[n].base_steps = c->base_steps;
        if (c->base_joint >= 0) S[n].base_joint = c->base_joint;
        if (c->sft_steps > 0) S[n].sft_steps = c->sft_steps;
        if (c->base_lr > 0.0f) S[n].base_lr = c->base_lr;
        if (c->sft_lr > 0.0f) S[n].sft_lr = c->sft_lr;
        if (c->rl_iters > 0) S[n].rl_iters = c->rl_iters;
        if (c->monitor > 0) S[n].train_monitor_every = c->monitor;
        if (c->rl_prompts > 0) S[n].rl_prompts = c->rl_prompts;
        if (c->rl_group > 1) S[n].rl_group = c->rl_group;
        if (c->dim > 0) { /* heads of 32, ffn 11/4 of dim rounded up to 32 (128 -> 4 heads, ffn 352) */
            S[n].dim = c->dim; S[n].heads = c->dim / 32; S[n].ffn = (c->dim * 11 / 4 + 31) / 32 * 32;
        }
        if (c->layers > 0) S[n].layers = c->layers;
        S[n].device = c->device;
        S[n].train_mixed = c->train_mixed;
        S[n].bf16 = c->device == D1_DEVICE_CPU &&
                    (c->precision == PRECISION_BF16 || (c->precision == PRECISION_AUTO && d1_bf16_simd_available()));
        S[n].rl = *rl; S[n].rlx = *rlx;
        if (c->block_n >= 0) S[n].block = c->block_n;
        S[n].seed = c->seed; S[n].out = c->out; S[n].full = c->full; S[n].ship = c->ship;
        n++;
    }
    return n;
}

/* The stage(s) that --stage names, for each task: 'all' is base and SFT
   (trained with --full, else shipped), the four RL arms two at a time, their
   evaluation. Returns how many failed, -1 for an unknown stage. */
static int run_stages(const cli *c, settings *S, int n_tasks) {
    job jobs[(int)N_TASKS > (int)N_STAGES ? (int)N_TASKS : (int)N_STAGES];
    int i, k, failed = 0;
    if (!strcmp(c->stage, "all")) {
        /* base and SFT: trained here with --full (the tasks in parallel), else shipped */
        for (k = 0, i = 0; k < n_tasks; k++) {
            char dir[512];
            model_dir(dir, sizeof dir, &S[k], STAGE_SFT);
            if (!c->full && !file_exists(dir))
                fprintf(stderr, "%s: no shipped checkpoints in examples/checkpoints; training base and SFT\n", S[k].t->name);
            if (c->full || !file_exists(dir)) { jobs[i].fn = base_and_sft; jobs[i].S = &S[k]; jobs[i].arg = 0; i++; }
        }
        failed += run_jobs(jobs, i, 2);
        /* the RL arms of each task, one process each, two at a time: the paper's
           two (d1's recipe), then the same two with the successor's */
        for (k = 0; k < n_tasks && !failed; k++) {
            for (i = 0; i < 4; i++) { jobs[i].fn = arm_and_eval; jobs[i].S = &S[k]; jobs[i].arg = STAGE_RL_BASE + i; }
            failed += run_jobs(jobs, 4, 2);
            plot_arms(&S[k]);
        }
    } else {
        for (k = 0; k < n_tasks; k++) {
            if (!strcmp(c->stage, "base")) failed += stage_train(&S[k], STAGE_BASE);
            else if (!strcmp(c->stage, "sft")) failed += stage_train(&S[k], STAGE_SFT);
            else if (!strcmp(c->stage, "rl")) {
                jobs[0].fn = stage_rl; jobs[0].S = &S[k]; jobs[0].arg = STAGE_RL_BASE;
                jobs[1].fn = stage_rl; jobs[1].S = &S[k]; jobs[1].arg = STAGE_D1;
                failed += run_jobs(jobs, 2, 2);
            } else if (!strcmp(c->stage, "x")) { /* the successor's two arms and their evaluation */
                jobs[0].fn = arm_and_eval; jobs[0].S = &S[k]; jobs[0].arg = STAGE_XRL_BASE;
                jobs[1].fn = arm_and_eval; jobs[1].S = &S[k]; jobs[1].arg = STAGE_XD1;
                failed += run_jobs(jobs, 2, 2);
                plot_arms(&S[k]);
            } else if (!strcmp(c->stage, "rl-base") || !strcmp(c->stage, "d1") || !strcmp(c->stage, "x-rl-base") ||
                       !strcmp(c->stage, "x-d1")) { /* one arm, then its evaluation */
                for (i = STAGE_RL_BASE; strcmp(c->stage, stage_names[i]) != 0; i++) {}
                failed += arm_and_eval(&S[k], i);
                plot_arms(&S[k]);
            } else if (!strcmp(c->stage, "eval")) {
                for (i = 0; i < N_STAGES; i++) { jobs[i].fn = stage_eval; jobs[i].S = &S[k]; jobs[i].arg = i; }
                failed += run_jobs(jobs, N_STAGES, 2);
            } else if (strcmp(c->stage, "table") != 0) return -1;
        }
    }
    return failed;
}

#ifndef D1_DEMO_NO_MAIN
/* The pipeline: base and SFT (shipped, or trained with --full), the RL arms,
   the evaluation, the table. The measurements and the experimental variants
   apart from it are tools/demo_measure.c. */
int main(int argc, char **argv) {
    cli c;
    int i, k, n_tasks, failed;
    rl_recipe rl, rlx;
    settings S[N_TASKS];
    double t0 = now_s();
    if (!task_tokenizers_init()) { fprintf(stderr, "d1_demo: the tasks' tokenizers: %s\n", d1_last_error()); return 1; }
    if ((i = cli_parse(argc, argv, &c, &rl, &rlx)) >= 0) return i;
    n_tasks = demo_settings(&c, &rl, &rlx, S);
    if (n_tasks == 0) { usage(); return 2; }
    for (k = 0; k < n_tasks; k++)
        if (!settings_match(&S[k], strcmp(c.stage, "table") != 0)) return 1;

    if ((failed = run_stages(&c, S, n_tasks)) < 0) { usage(); return 2; }
    for (k = 0; k < n_tasks; k++) print_table(&S[k]);
    write_summary(S, n_tasks);
    printf("\nwall time %.0f s (%s%s, seed %llu, RL and evaluation in %s, outputs in %s)\n", now_s() - t0,
           c.full ? "--full" : "from shipped base/SFT", c.quick ? ", --quick" : "", (unsigned long long)c.seed,
           S[0].bf16 ? "BF16" : "FP32", c.out);
    return failed ? 1 : 0;
}
#endif /* D1_DEMO_NO_MAIN */
