# d1.h - build the examples, tests, benchmark and tools.
#   make demo     the main job: the d1 pipeline on tiny Sudoku / Countdown models
#   make hello    examples/hello.c, the 80-line story
#   make test     every test binary; ends with "N passed, N failed"
#   make bench    throughput table (tools/bench.c) and the RL loop (tools/bench_rl.c); bench-compare adds PyTorch
#   make cuda     the CUDA backend (tools/d1_cuda.cu) and everything built on it
#   make test-cuda  the GPU parity tests (skipped, and passing, without a GPU)
# CC, CFLAGS, LDLIBS and BUILD may be overridden, e.g.
#   make test BUILD=build/nosimd CFLAGS="-O2 -DD1_NO_SIMD"
CFLAGS ?= -O3 -march=native
WARN    = -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra
LDLIBS ?= -lm -lpthread
BUILD  ?= build
PYTHON ?= /usr/bin/python3
RUNNER ?=

TESTS    = $(BUILD)/test_kernels $(BUILD)/test_grad $(BUILD)/test_model $(BUILD)/test_sampler \
           $(BUILD)/test_recipe $(BUILD)/test_lora $(BUILD)/test_checkpoint $(BUILD)/test_config $(BUILD)/test_malformed \
           $(BUILD)/test_resume $(BUILD)/test_contract $(BUILD)/test_bf16 $(BUILD)/test_bf16_amx $(BUILD)/test_examples \
           $(BUILD)/test_tokenizer \
           $(BUILD)/fuzz_replay \
           $(BUILD)/fuzz_dir_replay \
           $(BUILD)/fuzz_tokenizer_replay
EXAMPLES = $(BUILD)/hello $(BUILD)/grpo_bandit $(BUILD)/grpo_unrolled $(BUILD)/d1_demo

FUZZ_SECONDS ?= 60

.PHONY: all apps build-tests test demo demo-full demo-smoke hello bandit grpo-unrolled bench bench-rl bench-blis bench-compare bench-tokenizer bench-8b fuzz fuzz-dir fuzz-tokenizer ckpt-torch clean \
        cuda test-cuda threshold-check
all: apps $(TESTS)
# everything but the tests: the examples, benchmarks and tools
apps: $(EXAMPLES) $(BUILD)/bench $(BUILD)/bench_rl $(BUILD)/d1 $(BUILD)/bf16_grad_check $(BUILD)/tokenizer_bench \
      $(BUILD)/demo_measure $(BUILD)/make_random_model $(BUILD)/bench_resident

build-tests: $(TESTS)

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/test_%: tests/test_%.c d1.h tests/harness.h tests/refdata.h tests/count_alloc.h tests/ckpt_common.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

# test_bf16 again, its AMX kernel on tests/amx_emu.h's model of the tile instructions (any x86-64 with
# AVX512-BF16; elsewhere it says skipped)
$(BUILD)/test_bf16_amx: tests/test_bf16.c tests/amx_emu.h d1.h tests/harness.h tests/ckpt_common.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -DD1_AMX_EMULATE $< -o $@ $(LDLIBS)

$(BUILD)/hello: examples/hello.c d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

# the RL loop: the smallest whole story, and one iteration written out
$(BUILD)/grpo_bandit: examples/grpo_bandit.c d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

$(BUILD)/grpo_unrolled: examples/grpo_unrolled.c d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

# grpo_unrolled.c's iteration against d1_grpo_step
$(BUILD)/test_examples: tests/test_examples.c examples/grpo_unrolled.c examples/tasks.h d1.h tests/harness.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

$(BUILD)/d1_demo: examples/d1_demo.c examples/tasks.h d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

# the demo's measurements beside its pipeline (threshold decoding, RL headroom)
$(BUILD)/demo_measure: tools/demo_measure.c examples/d1_demo.c examples/tasks.h d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

# an experiment: diffu-GRPO over the order of reveals (Plackett-Luce), on d1.h's public API
$(BUILD)/order_rl: tools/order_rl.c examples/d1_demo.c examples/tasks.h d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

$(BUILD)/bench: tools/bench.c d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

# the RL loop (one d1_grpo_step per estimator, the demo's size)
$(BUILD)/bench_rl: tools/bench_rl.c d1.h examples/tasks.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

# mixed-precision gradients against FP32 and against BF16-rounded weights (BENCHMARKS.md)
$(BUILD)/bf16_grad_check: tools/bf16_grad_check.c d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

# the command-line tool: d1 info DIR, d1 sample DIR ...
$(BUILD)/d1: tools/d1.c d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

# the checkpoint loader's fuzz target: replayed over tests/data/fuzz_corpus by
# `make test`; `make fuzz` runs libFuzzer (clang) for FUZZ_SECONDS
$(BUILD)/fuzz_replay: tests/fuzz_load.c tests/fuzz_replay.h d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -DD1_FUZZ_REPLAY_MAIN $< -o $@ $(LDLIBS)

# the directory-level target (config, weights, shards, training state, adapters):
# replayed over tests/data/fuzz_dir_corpus by `make test`; `make fuzz-dir` runs libFuzzer
$(BUILD)/fuzz_dir_replay: tests/fuzz_dir.c tests/count_alloc.h tests/fuzz_replay.h d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -DD1_FUZZ_REPLAY_MAIN $< -o $@ $(LDLIBS)

$(BUILD)/fuzz_dir: tests/fuzz_dir.c tests/count_alloc.h d1.h | $(BUILD)
	clang -g -O1 -fsanitize=fuzzer,address,undefined $< -o $@ -lm -lpthread

fuzz-dir: $(BUILD)/fuzz_dir
	mkdir -p $(BUILD)/fuzz_dir_corpus
	./$(BUILD)/fuzz_dir -max_total_time=$(FUZZ_SECONDS) -timeout=10 -dict=tests/fuzz_load.dict \
	    $(BUILD)/fuzz_dir_corpus tests/data/fuzz_dir_corpus

$(BUILD)/fuzz_load: tests/fuzz_load.c d1.h | $(BUILD)
	clang -g -O1 -fsanitize=fuzzer,address,undefined $< -o $@ -lm -lpthread

fuzz: $(BUILD)/fuzz_load
	mkdir -p $(BUILD)/fuzz_corpus
	./$(BUILD)/fuzz_load -max_total_time=$(FUZZ_SECONDS) -timeout=10 -dict=tests/fuzz_load.dict \
	    $(BUILD)/fuzz_corpus tests/data/fuzz_corpus

# the tokenizer's target (tokenizer.json, then a text): replayed over
# tests/data/fuzz_tokenizer_corpus by `make test`; `make fuzz-tokenizer` runs libFuzzer
$(BUILD)/fuzz_tokenizer_replay: tests/fuzz_tokenizer.c tests/fuzz_replay.h d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -DD1_FUZZ_REPLAY_MAIN $< -o $@ $(LDLIBS)

$(BUILD)/fuzz_tokenizer: tests/fuzz_tokenizer.c d1.h | $(BUILD)
	clang -g -O1 -fsanitize=fuzzer,address,undefined $< -o $@ -lm -lpthread

fuzz-tokenizer: $(BUILD)/fuzz_tokenizer
	mkdir -p $(BUILD)/fuzz_tokenizer_corpus
	./$(BUILD)/fuzz_tokenizer -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=16384 \
	    $(BUILD)/fuzz_tokenizer_corpus tests/data/fuzz_tokenizer_corpus

# a checkpoint written by d1.h, read back by the PyTorch reference (python3-torch)
ckpt-torch: $(BUILD)/test_checkpoint
	rm -rf $(BUILD)/ckpt_export
	D1_CKPT_EXPORT=$(BUILD)/ckpt_export ./$(BUILD)/test_checkpoint >/dev/null
	$(PYTHON) tools/ckpt_roundtrip.py load $(BUILD)/ckpt_export/f32
	$(PYTHON) tools/ckpt_roundtrip.py load $(BUILD)/ckpt_export/bf16

# RUNNER runs each test binary through an emulator, e.g. for the arm64 build:
#   make test CC=aarch64-linux-gnu-gcc CFLAGS=-O2 BUILD=build/arm64 \
#             RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# D1_TEST_JOBS=2 in the environment runs two test binaries at once (outputs in order)
test: $(TESTS)
	@RUNNER="$(RUNNER)" sh tests/run.sh $(TESTS)

# the main job: both RL arms of d1 on Sudoku and Countdown from the shipped base
# and SFT checkpoints, evaluated, the paper's table printed (resumes; refuses an
# OUT made with other settings: rm -rf build/demo to start over).
# DEMO_ARGS="--task sudoku" (or countdown) narrows it.
demo: $(BUILD)/d1_demo
	./$(BUILD)/d1_demo $(DEMO_ARGS)

# everything from scratch, both tasks: base pretraining and SFT too
demo-full: $(BUILD)/d1_demo
	./$(BUILD)/d1_demo --full --task all --out $(BUILD)/demo-full $(DEMO_ARGS)

# the whole pipeline on tiny budgets (CI)
demo-smoke: $(BUILD)/d1_demo
	rm -rf $(BUILD)/demo-smoke
	./$(BUILD)/d1_demo --quick --full --task all --out $(BUILD)/demo-smoke

# the sampler issue's threshold bar, on the shipped GPU-trained Sudoku models (seed 1
# of tools/demo_gpu.sh, BF16): forward passes and score, steps = gen/2 vs threshold 0.9
threshold-check: $(BUILD)/demo_measure
	./$(BUILD)/demo_measure --full --out examples/checkpoints/gpu-seed1 --task sudoku --stage threshold --block 8

hello: $(BUILD)/hello
	./$(BUILD)/hello

bandit: $(BUILD)/grpo_bandit
	./$(BUILD)/grpo_bandit

grpo-unrolled: $(BUILD)/grpo_unrolled
	./$(BUILD)/grpo_unrolled

bench: $(BUILD)/bench $(BUILD)/bench_rl
	./$(BUILD)/bench
	./$(BUILD)/bench_rl

# the RL loop alone
bench-rl: $(BUILD)/bench_rl
	./$(BUILD)/bench_rl

# an 8B-class model held in BF16 (d1_model_load_bf16): random weights in
# LLaDA-8B's shape written as 16 GB of BF16 shards (once, into LLADA8B_DIR),
# then load, RSS, forward and generation against the bandwidth floor
LLADA8B_DIR ?= $(BUILD)/llada8b-random
$(BUILD)/make_random_model: tools/make_random_model.c d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

$(BUILD)/bench_resident: tools/bench_resident.c d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

bench-8b: $(BUILD)/make_random_model $(BUILD)/bench_resident
	[ -f $(LLADA8B_DIR)/config.json ] || ./$(BUILD)/make_random_model $(LLADA8B_DIR) --llada-8b
	./$(BUILD)/bench_resident $(LLADA8B_DIR) --threads 2

# the tokenizer at LLaDA-8B's vocabulary size (a generated 128,000-token
# byte-level BPE), d1.h beside @huggingface/tokenizers, on d1.h as the text
$(BUILD)/tokenizer_bench: tools/tokenizer_bench.c d1.h | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

bench-tokenizer: $(BUILD)/tokenizer_bench
	[ -f $(BUILD)/big_tokenizer/tokenizer.json ] || $(PYTHON) tools/make_big_tokenizer.py $(BUILD)/big_tokenizer
	./$(BUILD)/tokenizer_bench $(BUILD)/big_tokenizer d1.h
	[ -d tools/tokenizer_check/node_modules/@huggingface/tokenizers ] || \
	    (cd tools/tokenizer_check && npm install --no-audit --no-fund --silent >/dev/null)
	cd tools/tokenizer_check && node bench.mjs ../../$(BUILD)/big_tokenizer ../../d1.h

# the same with matmuls through BLIS (needs libblis-dev)
bench-blis: | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -DD1_USE_BLIS tools/bench.c -o $(BUILD)/bench_blis -lblis $(LDLIBS)
	./$(BUILD)/bench_blis

# d1.h and PyTorch (Debian's python3-torch) on the same machine, in one run; then, with
# LLAMA_CPP=a llama.cpp build directory (llama-diffusion-cli built), d1.h against llama.cpp on
# the same exported GGUF, F32 and BF16: logits, and the sampler (tools/bench_llama.sh); without
# it, one "skipped" line
LLAMA_CPP ?=
bench-compare: $(BUILD)/bench $(BUILD)/d1 $(BUILD)/make_random_model
	rm -f $(BUILD)/bench.csv
	./$(BUILD)/bench --csv $(BUILD)/bench.csv
	$(PYTHON) tools/bench_torch.py --csv $(BUILD)/bench.csv
	$(PYTHON) tools/bench_compare.py $(BUILD)/bench.csv
	sh tools/bench_llama.sh "$(LLAMA_CPP)" $(BUILD)

# ---- the CUDA backend (nvcc; links cuBLAS and the CUDA runtime) -------------
# Every program built against it: the tests (the CPU suite too, which must not
# notice the backend), the examples, the tool and the benchmark. CUDA_ARCH
# names the GPU (sm_90: H100 / H200); the object also carries PTX for others.
NVCC      ?= nvcc
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(shell command -v $(NVCC) 2>/dev/null))
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=[sm_80,compute_80]
CUBUILD    = $(BUILD)/cuda
CUFLAGS    = $(CFLAGS) $(WARN) -DD1_CUDA -I$(CUDA_HOME)/include
CULIBS     = $(CUBUILD)/d1_cuda.o -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++ $(LDLIBS)
# (not the AMX emulation's test_bf16_amx: a CPU kernel on a model of it, nothing of the GPU's)
CU_TESTS   = $(CUBUILD)/test_cuda $(patsubst $(BUILD)/%,$(CUBUILD)/%,$(filter-out $(BUILD)/test_bf16_amx,$(TESTS)))

cuda: $(CU_TESTS) $(CUBUILD)/hello $(CUBUILD)/d1_demo $(CUBUILD)/demo_measure $(CUBUILD)/d1 $(CUBUILD)/bench

$(CUBUILD)/d1_cuda.o: tools/d1_cuda.cu tools/d1_cuda.h
	mkdir -p $(CUBUILD)
	$(NVCC) -O3 -fmad=false $(CUDA_ARCH) -Xcompiler -Wall,-Wextra -c $< -o $@

$(CUBUILD)/test_%: tests/test_%.c d1.h tools/d1_cuda.h tests/harness.h tests/refdata.h tests/count_alloc.h tests/ckpt_common.h $(CUBUILD)/d1_cuda.o
	$(CC) $(CUFLAGS) $< -o $@ $(CULIBS)
$(CUBUILD)/fuzz_replay: tests/fuzz_load.c tests/fuzz_replay.h d1.h $(CUBUILD)/d1_cuda.o
	$(CC) $(CUFLAGS) -DD1_FUZZ_REPLAY_MAIN $< -o $@ $(CULIBS)
$(CUBUILD)/fuzz_dir_replay: tests/fuzz_dir.c tests/count_alloc.h tests/fuzz_replay.h d1.h $(CUBUILD)/d1_cuda.o
	$(CC) $(CUFLAGS) -DD1_FUZZ_REPLAY_MAIN $< -o $@ $(CULIBS)
$(CUBUILD)/fuzz_tokenizer_replay: tests/fuzz_tokenizer.c tests/fuzz_replay.h d1.h $(CUBUILD)/d1_cuda.o
	$(CC) $(CUFLAGS) -DD1_FUZZ_REPLAY_MAIN $< -o $@ $(CULIBS)
$(CUBUILD)/hello: examples/hello.c d1.h $(CUBUILD)/d1_cuda.o
	$(CC) $(CUFLAGS) $< -o $@ $(CULIBS)
$(CUBUILD)/d1_demo: examples/d1_demo.c examples/tasks.h d1.h $(CUBUILD)/d1_cuda.o
	$(CC) $(CUFLAGS) $< -o $@ $(CULIBS)
$(CUBUILD)/demo_measure: tools/demo_measure.c examples/d1_demo.c examples/tasks.h d1.h $(CUBUILD)/d1_cuda.o
	$(CC) $(CUFLAGS) $< -o $@ $(CULIBS)
$(CUBUILD)/d1: tools/d1.c d1.h $(CUBUILD)/d1_cuda.o
	$(CC) $(CUFLAGS) $< -o $@ $(CULIBS)
$(CUBUILD)/bench: tools/bench.c d1.h $(CUBUILD)/d1_cuda.o
	$(CC) $(CUFLAGS) $< -o $@ $(CULIBS)

# the parity tests, then the CPU suite as built against the backend
test-cuda: cuda
	@sh tests/run.sh $(CU_TESTS)

clean:
	rm -rf build
