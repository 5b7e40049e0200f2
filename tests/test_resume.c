/* Saves that fail and training that stops: a save cut short at any byte
   (the D1__TEST_FAIL_AFTER_BYTES hook, as a full disk would) or whose rename
   fails leaves the previous checkpoint loadable and no .tmp behind; a run
   saved with d1_train_state_save, freed and resumed is bit-identical to one
   that never stopped, at 1 and 2 threads, and 1 and 2 threads give the same
   bits. */
#define D1_IMPLEMENTATION
static long d1_test_fail_after = -1; /* the atomic-save test's failure hook */
#define D1__TEST_FAIL_AFTER_BYTES d1_test_fail_after
#include "../d1.h"
#include "ckpt_common.h"

/* The failure hook stops the file at N bytes, as a full disk would. */
static void test_atomic_save(void) {
    d1_config c = make_cfg(40, 32, 2, 4, 2, 48, 16, 0);
    d1_model a, a2, b;
    char dir[600], path[700];
    long limits[5] = {0, 7, 100, 0, 0};
    size_t full = 0;
    int rc, k;
    make_model(&a, &c, 1);
    make_model(&a2, &c, 2);
    limits[3] = (long)d1_model_save_size(&a, D1_DTYPE_F32) / 2;
    limits[4] = (long)d1_model_save_size(&a, D1_DTYPE_F32) - 1;
    /* 1. the first save fails: nothing under the final names, no .tmp */
    snprintf(dir, sizeof dir, "%s/atomic", tmpdir());
    d1_test_fail_after = 100;
    rc = d1_model_save(&a, dir, D1_DTYPE_F32);
    d1_test_fail_after = -1;
    CHECK(rc == D1_ERR_IO, "a failing write is D1_ERR_IO: %s", d1_strerror(rc));
    CHECK(!file_exists(dir, "model.safetensors") && !file_exists(dir, "config.json") && !count_tmp_files(dir),
          "nothing left behind");
    /* 2. a good checkpoint, then failing saves over it at several points */
    CHECK(d1_model_save(&a, dir, D1_DTYPE_F32) == D1_OK, "good save");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    free(read_all(path, &full));
    for (k = 0; k < 5; k++) {
        d1_test_fail_after = limits[k];
        rc = d1_model_save(&a2, dir, D1_DTYPE_F32);
        d1_test_fail_after = -1;
        CHECK(rc == D1_ERR_IO, "fails at %ld bytes", limits[k]);
        CHECK(!count_tmp_files(dir), "no .tmp after failing at %ld bytes", limits[k]);
        rc = d1_model_load(&b, dir);
        CHECK(rc == D1_OK, "the previous checkpoint still loads: %s", d1_strerror(rc));
        if (rc == D1_OK) {
            CHECK(same_params(&a, &b), "and is the previous one (limit %ld)", limits[k]);
            d1_model_free(&b);
        }
    }
    /* 3. a rename that must fail: a directory sits under the final name */
    snprintf(dir, sizeof dir, "%s/atomic_rename", tmpdir());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    mkdir(dir, 0777);
    mkdir(path, 0777);
    rc = d1_model_save(&a, dir, D1_DTYPE_F32);
    CHECK(rc == D1_ERR_IO, "rename over a directory fails: %s", d1_strerror(rc));
    CHECK(!count_tmp_files(dir) && !file_exists(dir, "config.json"), "and leaves no .tmp, no config");
    /* 4. a directory that cannot be created (a file is in the way) */
    snprintf(dir, sizeof dir, "%s/atomic/config.json/sub", tmpdir());
    CHECK(d1_model_save(&a, dir, D1_DTYPE_F32) == D1_ERR_IO, "mkdir through a file fails");
    (void)full;
    d1_model_free(&a);
    d1_model_free(&a2);
}

/* ---- exact resume ----------------------------------------------------------------------- */

static void resume(int threads, float *final_params, size_t *n_final) {
    d1_config c = make_cfg(32, 32, 2, 4, 2, 64, RT, 0);
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_model ref, m, r;
    d1_adamw oref, o, orr;
    d1_rng rref[2], rg[2], rr[2];
    char dir[600], settings[64];
    int rc, N = 3, M = 4;
    od.lr = 3e-3f;
    od.weight_decay = 0.1f;
    od.grad_clip = 0.5f;
    snprintf(dir, sizeof dir, "%s/resume%d", tmpdir(), threads);
    /* uninterrupted N + M steps */
    make_model(&ref, &c, 5);
    if (d1_model_set_threads(&ref, threads) != D1_OK) {
        printf("  (%d threads unavailable in this build: skipped)\n", threads);
        d1_model_free(&ref);
        return;
    }
    d1_adamw_init(&oref, &ref, &od);
    d1_rng_seed(&rref[0], 100);
    d1_rng_seed(&rref[1], 200);
    train(&ref, &oref, rref, N + M);
    /* N steps, save, free everything */
    make_model(&m, &c, 5);
    d1_model_set_threads(&m, threads);
    d1_adamw_init(&o, &m, &od);
    d1_rng_seed(&rg[0], 100);
    d1_rng_seed(&rg[1], 200);
    train(&m, &o, rg, N);
    rc = d1_model_save(&m, dir, D1_DTYPE_F32);
    CHECK(rc == D1_OK, "save model: %s", d1_strerror(rc));
    rc = d1_train_state_save(dir, &m, &o, rg, 2, "{\"steps_done\": 3, \"note\": \"r\\u00e9sum\\u00e9\"}");
    CHECK(rc == D1_OK, "save train state: %s", d1_strerror(rc));
    d1_adamw_free(&o);
    d1_model_free(&m);
    /* fresh structs: load, restore, continue M steps */
    rc = d1_model_load(&r, dir);
    CHECK(rc == D1_OK, "load model: %s", d1_strerror(rc));
    if (rc != D1_OK) goto done;
    d1_model_set_threads(&r, threads);
    {
        d1_adamw_desc other = d1_adamw_default_desc(); /* replaced by the saved desc */
        d1_adamw_init(&orr, &r, &other);
    }
    d1_rng_seed(&rr[0], 1);
    d1_rng_seed(&rr[1], 2);
    rc = d1_train_state_load(dir, &r, &orr, rr, 2, settings, sizeof settings);
    CHECK(rc == D1_OK, "load train state: %s", d1_strerror(rc));
    CHECK(orr.step == N && !memcmp(&orr.desc, &od, sizeof od), "step %lld and desc restored", (long long)orr.step);
    CHECK(!strcmp(settings, "{\"steps_done\": 3, \"note\": \"r\\u00e9sum\\u00e9\"}"), "settings: %s", settings);
    train(&r, &orr, rr, M);
    CHECK(same_params(&ref, &r), "resumed weights are bit-identical to the uninterrupted run (%d threads)", threads);
    CHECK(!memcmp(oref.m, orr.m, 2 * oref.n * sizeof(float)) && oref.step == orr.step, "and the moments");
    CHECK(!memcmp(rref, rr, sizeof rref), "and the RNG states");
    if (final_params) {
        memcpy(final_params, r.param_memory, r.num_params * sizeof(float));
        *n_final = r.num_params;
    }
    d1_adamw_free(&orr);
    d1_model_free(&r);
done:
    d1_adamw_free(&oref);
    d1_model_free(&ref);
}
static float resume_params[2][40000];
static size_t resume_n[2];
static void test_resume_1_thread(void) { resume(1, resume_params[0], &resume_n[0]); }
static void test_resume_2_threads(void) {
    resume(2, resume_params[1], &resume_n[1]);
    if (resume_n[0] && resume_n[1])
        CHECK(!memcmp(resume_params[0], resume_params[1], resume_n[0] * sizeof(float)),
              "1 and 2 threads train to the same bits (a promise of every build, BLIS too; here %s on %s)",
              d1_build_info(), th_cpu());
}

int main(void) {
    TH_BANNER();
    RUN(test_atomic_save);
    RUN(test_resume_1_thread);
    RUN(test_resume_2_threads);
    rm_tree(tmpdir());
    return th_summary();
}
