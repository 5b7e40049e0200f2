/* tasks.h - the two reasoning tasks of the d1 demo, written as a host
   application writes them: a tokenizer, seeded generators with a held-out
   split, a solver that writes the reasoning traces, and d1's reward functions.
   It uses only d1.h's public API (d1_rng, d1_tokenizer).

   THE VOCABULARY. Each task owns one (the task table at the end): its
   characters, one token each, then its tags, one token each, among them
   <eos> (also the answer padding) and <mask>. d1.h's tokenizer encodes and
   decodes it (d1_tokenizer_init_chars), and d1_tokenizer_save writes it
   beside each checkpoint as tokenizer.json, so a checkpoint carries its
   own. Both tasks here use the same 26 tokens (the shipped checkpoints
   were trained on them): the 20 characters of demo_chars, the four tags
   <reasoning> </reasoning> <answer> </answer>, <eos>, <mask>. A new task
   with other characters lists its own, and no other task's ids move.

   SUDOKU 4x4. There are exactly 288 solution grids; a grid goes to the test
   split when its hash says so (~1 in 5), so no test solution is ever seen in
   training. A puzzle blanks 8..11 cells of a grid, keeping the puzzles with a
   unique solution that "singles" (the naked and hidden singles of each round,
   applied together) solve in at most 3 rounds (with 8..11 blanks: 45% need
   one round, 50% two, 5% three; fewer blanks are mostly one-round puzzles). Prompt: the 16 cells row by
   row, 0 = empty. The trace is POSITION-ALIGNED: the grid after solver round 1
   and after round 2 (repeated once solved), then the answer grid, so every
   cell sits at a fixed offset:

       0030100020040300 -> <reasoning>4032...,4132...</reasoning><answer>4132...</answer>

   COUNTDOWN, 3 numbers. Numbers 1..9, operations + - *, target 1..99 chosen
   uniformly among the values that (x o y) o z or z o (x o y) reaches with
   every intermediate value >= 0. A (sorted numbers, target) pair goes to the
   test split by its hash (~1 in 5). Prompt "3,7,8:45" (target two digits).
   The trace is the solver's two steps with two-digit results, then the
   expression, again at fixed offsets:

       3,7,8:45 -> <reasoning>8+7=15,15*3=45</reasoning><answer>(8+7)*3</answer>

   Rewards (d1's): Sudoku = the share of the empty cells that the digits of
   the last <answer> fill correctly; Countdown = 1.0 when the last <answer>
   expression uses exactly the given numbers and equals the target within
   1e-5, 0.1 when an answer is there but wrong or invalid, 0 when none. */
#ifndef D1_DEMO_TASKS_H
#define D1_DEMO_TASKS_H

#include "../d1.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- vocabulary ----------------------------------------------------------- */
static const char demo_chars[] = "0123456789+-*/()=,.:";
static const char *const demo_tags[] = {"<reasoning>", "</reasoning>", "<answer>", "</answer>", "<eos>", "<mask>"};

/* The text between the LAST "<answer>" and the "</answer>" after it, into
   out[cap]; 0 when there is no complete answer (d1's regex <answer>(.*?)</answer>). */
static int last_answer(const char *text, char *out, size_t cap) {
    const char *open = NULL, *p = text, *close;
    size_t n;
    while ((p = strstr(p, "<answer>")) != NULL) {
        if (strstr(p, "</answer>")) open = p;
        p += 8;
    }
    if (!open) return 0;
    open += 8;
    close = strstr(open, "</answer>");
    n = (size_t)(close - open);
    if (n + 1 > cap) n = cap - 1;
    memcpy(out, open, n);
    out[n] = '\0';
    return 1;
}

static uint64_t hash64(uint64_t x) { /* splitmix64's finalizer */
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* SPLIT_ANY: puzzles from every solution grid (train and test), as d1's own
   Sudoku test set has them (its 500 puzzles use 229 of the 288 grids). */
enum { SPLIT_TRAIN = 0, SPLIT_TEST = 1, SPLIT_ANY = 2 };
static int split_of(uint64_t key) { return hash64(key ^ 0x5eedULL) % 5 == 0 ? SPLIT_TEST : SPLIT_TRAIN; }

/* One example: the prompt, the answer-only completion (for the base) and the
   reasoning completion (for SFT). */
typedef struct example {
    char prompt[32];
    char answer[64];
    char trace[160];
} example;

/* ==== Sudoku 4x4 ============================================================ */
static int sudoku_grids[288][16];
static int sudoku_n_grids;

static int sudoku_ok(const int *g, int cell, int v) { /* may v go into cell? */
    int r = cell / 4, c = cell % 4, i, br = r / 2 * 2, bc = c / 2 * 2;
    for (i = 0; i < 4; i++)
        if (g[r * 4 + i] == v || g[i * 4 + c] == v || g[(br + i / 2) * 4 + bc + i % 2] == v) return 0;
    return 1;
}

static void sudoku_enumerate(int *g, int cell) {
    int v;
    if (cell == 16) { memcpy(sudoku_grids[sudoku_n_grids++], g, sizeof(int) * 16); return; }
    for (v = 1; v <= 4; v++)
        if (sudoku_ok(g, cell, v)) { g[cell] = v; sudoku_enumerate(g, cell + 1); g[cell] = 0; }
}

/* number of solutions of g (0 = empty), counting up to 2 */
static int sudoku_count(int *g) {
    int cell, v, n = 0;
    for (cell = 0; cell < 16 && g[cell]; cell++) {}
    if (cell == 16) return 1;
    for (v = 1; v <= 4 && n < 2; v++)
        if (sudoku_ok(g, cell, v)) { g[cell] = v; n += sudoku_count(g); g[cell] = 0; }
    return n;
}

/* One solver round: every empty cell with a single candidate (naked single)
   and every digit with a single place in a row, column or box (hidden
   single) is filled, all decided on the grid as it was at the round's start.
   Returns the cells filled. */
static int sudoku_round(int *g) {
    int next[16], cell, v, u, k, filled = 0;
    memcpy(next, g, sizeof next);
    for (cell = 0; cell < 16; cell++) {
        int cands = 0, last = 0;
        if (g[cell]) continue;
        for (v = 1; v <= 4; v++)
            if (sudoku_ok(g, cell, v)) { cands++; last = v; }
        if (cands == 1) next[cell] = last;
    }
    for (u = 0; u < 12; u++) /* units: 4 rows, 4 columns, 4 boxes */
        for (v = 1; v <= 4; v++) {
            int places = 0, at = -1;
            for (k = 0; k < 4; k++) {
                int cell2 = u < 4 ? u * 4 + k : u < 8 ? k * 4 + (u - 4) : ((u - 8) / 2 * 2 + k / 2) * 4 + (u - 8) % 2 * 2 + k % 2;
                if (!g[cell2] && sudoku_ok(g, cell2, v)) { places++; at = cell2; }
                if (g[cell2] == v) places = 99;
            }
            if (places == 1) next[at] = v;
        }
    for (cell = 0; cell < 16; cell++) filled += next[cell] != g[cell];
    memcpy(g, next, sizeof next);
    return filled;
}

/* fills g with its first solution; 0 when it has none */
static int sudoku_solve(int *g) {
    int cell, v;
    for (cell = 0; cell < 16 && g[cell]; cell++) {}
    if (cell == 16) return 1;
    for (v = 1; v <= 4; v++)
        if (sudoku_ok(g, cell, v)) {
            g[cell] = v;
            if (sudoku_solve(g)) return 1;
            g[cell] = 0;
        }
    return 0;
}

static void grid_text(const int *g, char *out) {
    int i;
    for (i = 0; i < 16; i++) out[i] = (char)('0' + g[i]);
    out[16] = '\0';
}

static void sudoku_init(void) {
    int g[16] = {0};
    if (sudoku_n_grids == 0) sudoku_enumerate(g, 0);
}

static uint64_t grid_key(const int *g) {
    uint64_t k = 0;
    int i;
    for (i = 0; i < 16; i++) k = k * 5 + (uint64_t)g[i];
    return k;
}

/* How many cells a puzzle blanks: 8-11 (see DEMO.md). */
enum { SUDOKU_HOLES_MIN = 8, SUDOKU_HOLES_MAX = 11 };

/* A puzzle of the given split with holes_min..holes_max blanks, its answer
   and its position-aligned trace. */
static void sudoku_puzzle(d1_rng *rng, int split, int holes_min, int holes_max, example *ex) {
    sudoku_init();
    for (;;) {
        const int *sol = sudoku_grids[d1_rng_u64(rng) % 288];
        int puz[16], g[16], rounds[2][16], i, r;
        int holes = holes_min + (int)(d1_rng_u64(rng) % (uint64_t)(holes_max - holes_min + 1));
        char a[17], b[17], c[17], p[17];
        if (split != SPLIT_ANY && split_of(grid_key(sol)) != split) continue;
        memcpy(puz, sol, sizeof puz);
        for (i = 0; i < holes;) { /* blank `holes` distinct cells */
            int cell = (int)(d1_rng_u64(rng) % 16);
            if (puz[cell]) { puz[cell] = 0; i++; }
        }
        memcpy(g, puz, sizeof g);
        if (sudoku_count(g) != 1) continue;
        for (r = 0; r < 3; r++) {
            sudoku_round(g);
            if (r < 2) memcpy(rounds[r], g, sizeof g);
        }
        if (memcmp(g, sol, sizeof g) != 0) continue; /* needs more than 3 rounds */
        grid_text(puz, p); grid_text(rounds[0], a); grid_text(rounds[1], b); grid_text(sol, c);
        sprintf(ex->prompt, "%s", p);
        sprintf(ex->answer, "<answer>%s</answer>", c);
        sprintf(ex->trace, "<reasoning>%s,%s</reasoning><answer>%s</answer>", a, b, c);
        return;
    }
}

/* The task's example: a puzzle with the usual 8-11 blanks. */
static void sudoku_example(d1_rng *rng, int split, example *ex) {
    sudoku_puzzle(rng, split, SUDOKU_HOLES_MIN, SUDOKU_HOLES_MAX, ex);
}

/* d1's Sudoku reward: the share of the puzzle's empty cells that the digits
   of the last answer fill correctly (digit i of the answer is cell i). */
static float sudoku_reward_text(const char *prompt, const char *completion) {
    int puz[16], sol[16], i, k = 0, empty = 0, right = 0;
    char ans[128], digits[128];
    for (i = 0; i < 16; i++) puz[i] = sol[i] = prompt[i] - '0';
    sudoku_solve(sol);
    if (!last_answer(completion, ans, sizeof ans)) return 0.0f;
    for (i = 0; ans[i]; i++)
        if (ans[i] >= '0' && ans[i] <= '9') digits[k++] = ans[i];
    for (i = 0; i < 16; i++) {
        if (puz[i]) continue;
        empty++;
        right += i < k && digits[i] - '0' == sol[i];
    }
    return empty ? (float)right / (float)empty : 0.0f;
}


/* ==== Countdown, 3 numbers ================================================== */
static int cd_apply(int a, char op, int b) { return op == '+' ? a + b : op == '-' ? a - b : a * b; }

/* Finds the solver's first solution of n[3] -> target, trying the pairs in
   order, the larger number first, ops + - *; the second step is m o z, or
   z - m when m < z. Writes the trace and the answer (either may be NULL);
   0 when there is none. With target < 0, instead marks every value in
   1..99 that some expression reaches: reach[t] = 1. */
static int countdown_solve(const int *n, int target, char *trace, char *answer, unsigned char *reach) {
    static const int pairs[3][3] = {{0, 1, 2}, {0, 2, 1}, {1, 2, 0}};
    static const char ops[] = "+-*";
    int p, o1, o2;
    for (p = 0; p < 3; p++)
        for (o1 = 0; o1 < 3; o1++)
            for (o2 = 0; o2 < 3; o2++) {
                int a = n[pairs[p][0]], b = n[pairs[p][1]], z = n[pairs[p][2]];
                int x = a > b ? a : b, y = a > b ? b : a, m = cd_apply(x, ops[o1], y), t, z_first;
                z_first = ops[o2] == '-' && m < z;
                t = z_first ? z - m : cd_apply(m, ops[o2], z);
                if (reach) { if (t >= 1 && t <= 99) reach[t] = 1; continue; }
                if (t != target) continue;
                if (trace && z_first)
                    sprintf(trace, "<reasoning>%d%c%d=%02d,%d-%02d=%02d</reasoning>", x, ops[o1], y, m, z, m, t);
                else if (trace)
                    sprintf(trace, "<reasoning>%d%c%d=%02d,%02d%c%d=%02d</reasoning>", x, ops[o1], y, m, m, ops[o2], z, t);
                if (answer && z_first) sprintf(answer, "<answer>%d-(%d%c%d)</answer>", z, x, ops[o1], y);
                else if (answer) sprintf(answer, "<answer>(%d%c%d)%c%d</answer>", x, ops[o1], y, ops[o2], z);
                return 1;
            }
    return 0;
}

static void countdown_example(d1_rng *rng, int split, example *ex) {
    for (;;) {
        int n[3], s[3], i, j, count = 0, target = 0, pick;
        unsigned char reach[100] = {0};
        char trace[96], answer[48];
        for (i = 0; i < 3; i++) n[i] = s[i] = 1 + (int)(d1_rng_u64(rng) % 9);
        countdown_solve(n, -1, NULL, NULL, reach);
        for (i = 1; i < 100; i++) count += reach[i];
        pick = (int)(d1_rng_u64(rng) % (uint64_t)count);
        for (i = 1; i < 100; i++)
            if (reach[i] && pick-- == 0) { target = i; break; }
        for (i = 0; i < 3; i++) /* sort s: the split key ignores the order */
            for (j = i + 1; j < 3; j++)
                if (s[j] < s[i]) { int t = s[i]; s[i] = s[j]; s[j] = t; }
        if (split != SPLIT_ANY && split_of((uint64_t)(((s[0] * 10 + s[1]) * 10 + s[2]) * 100 + target)) != split)
            continue;
        countdown_solve(n, target, trace, answer, NULL);
        sprintf(ex->prompt, "%d,%d,%d:%02d", n[0], n[1], n[2], target);
        sprintf(ex->answer, "%s", answer);
        sprintf(ex->trace, "%s%s", trace, answer);
        return;
    }
}

/* A recursive-descent evaluator for + - * / ( ) over integers, in double.
   Returns 0 on a syntax error or a division by zero. */
typedef struct cd_parser { const char *s; int ok; } cd_parser;
static double cd_expr(cd_parser *p);
static double cd_atom(cd_parser *p) {
    double v = 0.0;
    if (*p->s == '(') {
        p->s++;
        v = cd_expr(p);
        if (*p->s != ')') p->ok = 0; else p->s++;
        return v;
    }
    if (*p->s == '-') { p->s++; return -cd_atom(p); }
    if (*p->s < '0' || *p->s > '9') { p->ok = 0; return 0.0; }
    while (*p->s >= '0' && *p->s <= '9') v = v * 10.0 + (*p->s++ - '0');
    return v;
}
static double cd_term(cd_parser *p) {
    double v = cd_atom(p);
    while (p->ok && (*p->s == '*' || *p->s == '/')) {
        char op = *p->s++;
        double r = cd_atom(p);
        if (op == '/' && r == 0.0) { p->ok = 0; return 0.0; }
        v = op == '*' ? v * r : v / r;
    }
    return v;
}
static double cd_expr(cd_parser *p) {
    double v = cd_term(p);
    while (p->ok && (*p->s == '+' || *p->s == '-')) {
        char op = *p->s++;
        double r = cd_term(p);
        v = op == '+' ? v + r : v - r;
    }
    return v;
}

/* d1's Countdown reward (TinyZero's): 1.0 when the last answer uses exactly
   the given numbers (each once) and equals the target within 1e-5, 0.1 when
   there is an answer but it is wrong or invalid, 0 when there is none. */
static float countdown_reward_text(const char *prompt, const char *completion) {
    int n[3], used[8], n_used = 0, target, i, j;
    char ans[128];
    const char *q;
    cd_parser p;
    double v;
    if (sscanf(prompt, "%d,%d,%d:%d", &n[0], &n[1], &n[2], &target) != 4) return 0.0f;
    if (!last_answer(completion, ans, sizeof ans)) return 0.0f;
    for (q = ans; *q;) { /* the numbers it uses */
        if (*q < '0' || *q > '9') { q++; continue; }
        if (n_used == 8) return 0.1f;
        used[n_used] = 0;
        while (*q >= '0' && *q <= '9') used[n_used] = used[n_used] * 10 + (*q++ - '0');
        n_used++;
    }
    if (n_used != 3) return 0.1f;
    for (i = 0; i < 3; i++) { /* a multiset match */
        for (j = 0; j < 3 && used[j] != n[i]; j++) {}
        if (j == 3) return 0.1f;
        used[j] = -1;
    }
    p.s = ans; p.ok = 1;
    v = cd_expr(&p);
    if (!p.ok || *p.s != '\0') return 0.1f;
    return fabs(v - target) < 1e-5 ? 1.0f : 0.1f;
}

/* ==== the task table ======================================================== */
typedef struct task {
    const char *name;
    int   prompt_len;          /* P: every prompt has exactly this many tokens         */
    int   gen_lens[3];         /* the evaluation's generation lengths                   */
    int   n_gen_lens;
    int   block_len;           /* semi-autoregressive block, scaled from d1's 32 of 256 */
    int   cells;               /* 1: report the share of cells (Sudoku)                */
    void  (*example)(d1_rng *rng, int split, example *ex);
    float (*reward_text)(const char *prompt, const char *completion);
    const char *chars;         /* the vocabulary: these characters (UTF-8), ids 0, 1, ... */
    const char *const *tags;   /* then these, one token each; "<eos>" and "<mask>" among them */
    int   n_tags;
    const char *any_split;     /* what SPLIT_ANY draws from, for the table's footnote  */
} task;

static const task tasks[] = {
    {"sudoku", 16, {56, 64, 0}, 2, 8, 1, sudoku_example, sudoku_reward_text, demo_chars, demo_tags, 6,
     "puzzles from every solution grid, as d1's own test set"},
    {"countdown", 8, {32, 48, 0}, 2, 8, 0, countdown_example, countdown_reward_text, demo_chars, demo_tags, 6,
     "problems from every number set and target, the training ones too"},
};
enum { N_TASKS = sizeof tasks / sizeof tasks[0] };

static const task *task_find(const char *name) {
    size_t i;
    for (i = 0; i < N_TASKS; i++)
        if (strcmp(tasks[i].name, name) == 0) return &tasks[i];
    return NULL;
}

/* ---- the task's tokenizer ---------------------------------------------------- */
/* d1.h's tokenizer of t's vocabulary, built on first use: call it once for
   each task before any threads do (task_tokenizers_init). NULL only when
   memory runs out. */
static const d1_tokenizer *task_tokenizer(const task *t) {
    static d1_tokenizer tok[N_TASKS];
    d1_tokenizer *k = &tok[t - tasks];
    if (!k->impl && d1_tokenizer_init_chars(k, t->chars, t->tags, t->n_tags) != D1_OK) return NULL;
    return k;
}
static int task_tokenizers_init(void) {
    int i;
    for (i = 0; i < N_TASKS; i++)
        if (!task_tokenizer(&tasks[i])) return 0;
    return 1;
}
/* The id of a tag ("<eos>", "<mask>") in t's vocabulary, -1 if it has none. */
static int task_token(const task *t, const char *tag) {
    const d1_tokenizer *tok = task_tokenizer(t);
    int id = tok ? d1_tokenizer_token_id(tok, tag) : -1;
    return id >= 0 ? id : -1;
}

/* text -> ids; returns the count, or -1 on an unknown character or overflow */
static int tok_encode(const task *t, const char *s, int *ids, int cap) {
    int n;
    const d1_tokenizer *tok = task_tokenizer(t);
    if (!tok || d1_tokenizer_encode(tok, s, strlen(s), ids, cap, &n) != D1_OK) return -1;
    return n;
}

/* ids -> text (NUL-terminated, cut to fit cap; "" for an id outside the vocabulary) */
static void tok_decode(const task *t, const int *ids, int n, char *out, size_t cap) {
    size_t len;
    const d1_tokenizer *tok = task_tokenizer(t);
    out[0] = '\0';
    if (tok) d1_tokenizer_decode(tok, ids, n, 0, out, cap, &len);
}

#endif /* D1_DEMO_TASKS_H */
