/* demo_measure.c - the d1 demo's measurements and experiments, apart from
   its pipeline (examples/d1_demo.c, which this file builds on). For each row
   of the table (base, +SFT, the RL arms) that OUT holds,

     --stage threshold  Fast-dLLM's threshold decoding (0.9) against the
                        paper's schedule (steps = gen_len / 2): forward
                        passes, wall time and score (the sampler issue's
                        measurement; make threshold-check, a CI gate)
     --stage headroom   G rollouts per held-out prompt as the RL arms sample
                        them: sample mean, best-of-G and worst-of-G reward

   It takes d1_demo's flags (the settings must be those OUT was made with:
   it compares and never writes them), e.g.
     build/demo_measure --full --out examples/checkpoints/gpu-seed1 --task sudoku --stage threshold --block 8

   The experimental variants run the pipeline's stages (any of d1_demo's
   --stage values) with one of its pieces replaced; OUT's settings.txt
   records the variant, so an OUT holds one variant only:
     --train-holes LO-HI  base and SFT see Sudoku puzzles with LO-HI blanks
                          (the RL arms and the evaluation keep 8-11): the
                          paper's setting, where the SFT data is not the RL
                          task's distribution
     --rl-pool N          the RL arms cycle through N fixed training prompts
                          (d1: a finite training set) instead of a fresh
                          puzzle every iteration
   e.g. build/demo_measure --task sudoku --rl-pool 16 --out build/pool --stage rl-base

   Build: cc -O2 -march=native tools/demo_measure.c -o build/demo_measure -lm -lpthread */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic ignored "-Wunused-function" /* the pipeline's stages, not run here */
#endif
#define D1_DEMO_NO_MAIN
#include "../examples/d1_demo.c"

/* Fast-dLLM's threshold decoding against the paper's schedule, on the
   held-out prompts at the first generation length: forward passes, wall
   time and score of each trained row (the sampler issue's measurement). */
static int stage_threshold(const settings *S, int stage) {
    const task *t = S->t;
    char dir[512];
    int *prompts, n, k, gen = t->gen_lens[0];
    d1_model m;
    model_dir(dir, sizeof dir, S, stage);
    if (!file_exists(dir)) { /* a row not trained (yet) */
        fprintf(stderr, "%s %s: no model at %s, skipped\n", t->name, stage_names[stage], dir);
        return 0;
    }
    if (check(d1_model_load(&m, dir), dir) != D1_OK || place(S, &m) != D1_OK) return 1;
    prompts = (int *)malloc(sizeof(int) * S->eval_n * t->prompt_len);
    n = heldout_prompts(t, S->eval_n, 2024, SPLIT_TEST, prompts);
    for (k = 0; k < 2; k++) {
        score sc;
        int passes = 0;
        double t0 = now_s();
        if (evaluate_with(&m, S, gen, S->block, prompts, n, 0, &sc, k ? 0.9f : 0.0f, &passes) != D1_OK) break;
        printf("%-9s %-8s gen_len %3d %-14s: reward %.3f ± %.3f, exact %.3f, %6d forward passes, %5.1f s\n", t->name,
               stage_names[stage], gen, k ? "threshold 0.9" : "steps gen/2", sc.mean, sc.se, sc.exact, passes,
               now_s() - t0);
    }
    free(prompts);
    d1_model_free(&m);
    return 0;
}

/* What GRPO has to select from: G rollouts per held-out prompt, sampled as
   the RL arms sample them (d1's rollout settings: temperature 0.9,
   low_confidence, steps = gen_len / 2; or the arm's recipe's temperature and
   remasking), scored; per row, the mean reward of the samples (its standard
   error takes each prompt's group mean as one draw), of the best and the
   worst of each group (best-of-G: what a policy that always wrote its
   group's best completion would score), the share of groups whose rewards
   are all equal (no signal), and how far a group's completions are apart:
   the reward's standard deviation within a group, the distinct completions
   of a group, the tokens in which two of them differ (mean over pairs), and
   the share of the G rows' canvases the sampler's passes computed (the rest
   were equal to another row's at that step). */
static int stage_headroom(const settings *S, int stage) {
    const task *t = S->t;
    char dir[512];
    int G = S->rl_group, P = t->prompt_len, gen = t->gen_lens[0], T = P + gen, n, i, g;
    int *prompts, *group, *out;
    float *rs;
    double sum = 0, sum2 = 0, best = 0, worst = 0, flat = 0, sd = 0, distinct = 0, apart = 0, rows = 0, t0 = now_s();
    d1_grpo_desc gd = d1_grpo_default_desc(gen);
    d1_sample_stats st;
    d1_rng rng;
    d1_model m;
    model_dir(dir, sizeof dir, S, stage);
    if (!file_exists(dir)) {
        fprintf(stderr, "%s %s: no model at %s, skipped\n", t->name, stage_names[stage], dir);
        return 0;
    }
    if (check(d1_model_load(&m, dir), dir) != D1_OK || place(S, &m) != D1_OK) return 1;
    gd.sampler = rollout_sampler(S, gen);
    gd.sampler.temperature = recipe_of(S, stage)->temperature; /* the arm's (the base and SFT rows: d1's) */
    gd.sampler.remasking = recipe_of(S, stage)->remasking;
    prompts = (int *)malloc(sizeof(int) * S->eval_n * P);
    group = (int *)malloc(sizeof(int) * G * P);
    out = (int *)malloc(sizeof(int) * G * T);
    rs = (float *)malloc(sizeof(float) * G);
    n = heldout_prompts(t, S->eval_n, 2024, SPLIT_TEST, prompts);
    d1_rng_seed(&rng, S->seed * 1000 + 50 + stage);
    for (i = 0; i < n; i++) {
        float hi = -1.0f, lo = 2.0f;
        double mean = 0, var = 0;
        int h, k, diff;
        for (g = 0; g < G; g++) memcpy(group + (size_t)g * P, prompts + (size_t)i * P, sizeof(int) * P);
        if (check(d1_sampler_generate(&m, &gd.sampler, group, G, P, NULL, &rng, out, &st), "sample") != D1_OK) break;
        rows += (double)st.forward_rows / ((double)G * st.forward_passes) / n;
        for (g = 0; g < G; g++) {
            const int *row = out + (size_t)g * T;
            d1_rollout ro;
            float r;
            int equal = 0;
            for (h = 0; h < g; h++) { /* the tokens in which completions g and h differ */
                for (k = P, diff = 0; k < T; k++) diff += row[k] != out[(size_t)h * T + k];
                apart += diff / (G * (G - 1) / 2.0) / n;
                equal |= diff == 0;
            }
            distinct += !equal / (double)n;
            ro.prompt = row; ro.prompt_len = P; ro.completion = row + P; ro.prompt_index = i; ro.member = g;
            for (ro.completion_len = 0; ro.completion_len < gen && row[P + ro.completion_len] != m.config.eos_id;
                 ro.completion_len++) {}
            r = reward_tokens(&ro, (void *)t);
            rs[g] = r;
            mean += r / (double)G;
            hi = r > hi ? r : hi; lo = r < lo ? r : lo;
        }
        sum += mean; sum2 += mean * mean;
        best += hi; worst += lo; flat += hi == lo;
        for (g = 0; g < G; g++) var += (rs[g] - mean) * (rs[g] - mean) / (G - 1);
        sd += sqrt(var) / n;
    }
    printf("%-9s %-8s gen_len %3d, G %d at temperature %.1f, %s remasking, %d prompts: sample mean %.3f +- %.3f, "
           "best-of-G %.3f, worst-of-G %.3f, groups all equal %.2f; within a group: reward sd %.3f, %.2f distinct "
           "completions, %.2f tokens apart; rows computed %.0f%% (%.0f s)\n",
           t->name, stage_names[stage], gen, G, (double)gd.sampler.temperature,
           gd.sampler.remasking == D1_REMASK_RANDOM ? "random" : "low_confidence", n, sum / n,
           n > 1 ? sqrt((sum2 - sum * sum / n) / (n - 1) / n) : 0.0, best / n, worst / n,
           flat / n, sd, distinct, apart, 100.0 * rows, now_s() - t0);
    free(prompts); free(group); free(out); free(rs);
    d1_model_free(&m);
    return 0;
}

/* ---- the variants ----------------------------------------------------------- */
static int holes_min, holes_max; /* --train-holes LO-HI (0: not given) */
static int pool_n;               /* --rl-pool N (0: not given)         */
static char variant[64];

/* --train-holes: base and SFT on Sudoku puzzles with holes_min..holes_max
   blanks (Countdown's examples are as they were). */
static void train_example_holes(const settings *S, d1_rng *rng, example *ex) {
    if (!strcmp(S->t->name, "sudoku")) sudoku_puzzle(rng, SPLIT_TRAIN, holes_min, holes_max, ex);
    else S->t->example(rng, SPLIT_TRAIN, ex);
}

/* --rl-pool: prompt i of iteration it is pool[(it * prompts + i) mod N], the
   pool being the first N training examples of its own generator (seeded
   from the run's seed), drawn at the first call of an arm's process (each
   arm runs in one, for one task) and kept until it exits. */
static void arm_prompts_pool(const settings *S, int it, d1_rng *fresh, int *prompts) {
    static int *pool;
    static const task *pool_task;
    const task *t = S->t;
    int P = t->prompt_len, i;
    (void)fresh; /* the pool draws nothing from the arm's generator */
    if (pool_task != t) {
        d1_rng pr;
        free(pool);
        if (!(pool = (int *)malloc(sizeof(int) * (size_t)pool_n * P))) {
            fprintf(stderr, "demo_measure: out of memory for the pool\n");
            exit(1);
        }
        pool_task = t;
        d1_rng_seed(&pr, S->seed * 1000 + 60);
        for (i = 0; i < pool_n; i++) {
            example ex;
            t->example(&pr, SPLIT_TRAIN, &ex);
            encode_prompt(t, ex.prompt, pool + (size_t)i * P);
        }
    }
    for (i = 0; i < S->rl_prompts; i++)
        memcpy(prompts + (size_t)i * P, pool + (((size_t)it * S->rl_prompts + i) % (size_t)pool_n) * P, sizeof(int) * P);
}

/* Takes the variants' flags out of argv (into the statics above); returns
   the argc left, -1 for a malformed value. */
static int variant_flags(int argc, char **argv) {
    int i, n = 1;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--train-holes") && i + 1 < argc) {
            if (sscanf(argv[++i], "%d-%d", &holes_min, &holes_max) != 2 || holes_min < 1 || holes_max < holes_min ||
                holes_max > 11)
                return -1;
        } else if (!strcmp(argv[i], "--rl-pool") && i + 1 < argc) {
            if ((pool_n = atoi(argv[++i])) < 1) return -1;
        } else
            argv[n++] = argv[i];
    }
    if (holes_min && pool_n) snprintf(variant, sizeof variant, "train_holes %d-%d, rl_pool %d", holes_min, holes_max, pool_n);
    else if (holes_min) snprintf(variant, sizeof variant, "train_holes %d-%d", holes_min, holes_max);
    else if (pool_n) snprintf(variant, sizeof variant, "rl_pool %d", pool_n);
    return n;
}

int main(int argc, char **argv) {
    cli c;
    rl_recipe rl, rlx;
    settings S[N_TASKS];
    int i, k, n_tasks, failed = 0, threshold, measure;
    demo_prog = "demo_measure";
    if (!task_tokenizers_init()) { fprintf(stderr, "demo_measure: the tasks' tokenizers: %s\n", d1_last_error()); return 1; }
    if ((argc = variant_flags(argc, argv)) < 0) {
        fprintf(stderr, "demo_measure: --train-holes LO-HI (1 <= LO <= HI <= 11) or --rl-pool N (N >= 1)\n");
        return 2;
    }
    if ((i = cli_parse(argc, argv, &c, &rl, &rlx)) >= 0) return i;
    threshold = !strcmp(c.stage, "threshold");
    measure = threshold || !strcmp(c.stage, "headroom");
    if (!measure && !variant[0]) {
        fprintf(stderr, "demo_measure: --stage threshold or --stage headroom, or a variant (--train-holes, --rl-pool) "
                        "with one of d1_demo's stages\n");
        return 2;
    }
    n_tasks = demo_settings(&c, &rl, &rlx, S);
    if (n_tasks == 0) { usage(); return 2; }
    for (k = 0; k < n_tasks && variant[0]; k++) {
        S[k].variant = variant;
        if (holes_min) S[k].train_example = train_example_holes;
        if (pool_n) S[k].arm_prompts = arm_prompts_pool;
    }
    for (k = 0; k < n_tasks; k++) /* a measurement compares, a variant's run records */
        if (!settings_match(&S[k], !measure && strcmp(c.stage, "table") != 0)) return 1;
    if (!measure) {
        if ((failed = run_stages(&c, S, n_tasks)) < 0) { usage(); return 2; }
        for (k = 0; k < n_tasks; k++) print_table(&S[k]);
        return failed ? 1 : 0;
    }
    /* the numbers are this build's: another SIMD path rounds otherwise */
    if (threshold) printf("build: %s\n", d1_build_info());
    for (k = 0; k < n_tasks; k++)
        for (i = 0; i < N_STAGES; i++) failed += threshold ? stage_threshold(&S[k], i) : stage_headroom(&S[k], i);
    return failed ? 1 : 0;
}
