"""Bad input, as a table: every case ends with one line naming the problem, exit code 2, no traceback.

Each case builds its input under a fresh directory, runs `harness` as a real process there (forked
from a process that has imported the harness already, tests/cli_processes.py), and checks the
exit code, that stderr is exactly one `error: ...` line holding the expected words, and that the
command left nothing behind: no temp file, no partial stage, no metrics.json, and every file that
was there before unchanged (lock files, which hold no data, are the one thing it may add).
docs/troubleshooting.md lists these cases.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from transformers import BertConfig

from harness.core.config import load_profile
from harness.training.models import ModelConfig, build_tiny_model, build_tokenizer, save_checkpoint
from harness.training.train import initial_checkpoint, suite_vocabulary
from tests.cli_processes import harness

SMOKE = ["--profile", "smoke"]
TRAIN = ["train", "--method", "react", "--task", "countdown", *SMOKE]


@dataclass(frozen=True)
class Case:
    """A malformed input: how to make it in a directory, the command that meets it, the words expected."""

    id: str
    make: Callable[[Path], list[str]]
    message: str
    hide: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


def _args(*argv: str) -> Callable[[Path], list[str]]:
    return lambda _: list(argv)


def _profile(text: str, *argv: str, name: str = "p.yaml") -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        (d / name).write_text(text)
        return [*argv, "--profile", str(d / name)]

    return make


def _profile_show(text: str) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        (d / "p.yaml").write_text(text)
        return ["profile", "show", str(d / "p.yaml")]

    return make


SMALL = "tasks: {countdown: {n_train: 4, n_dev: 1, n_test: 2}}\n"


def _run(d: Path, method: str, instances: list[str], episodes: str | None = None, metrics: str | None = None) -> None:
    """Writes a run of the smoke profile on countdown seed 0 under d/runs (complete unless told)."""
    path = d / "runs" / "smoke" / "countdown" / method / "seed0"
    path.mkdir(parents=True)
    records = [
        {"episode": i, "instance_id": iid, "success": i % 2 == 0, "candidates": [], "turns": [{"parsed": None}]}
        for i, iid in enumerate(instances)
    ]
    (path / "manifest.json").write_text("{}\n")
    (path / "episodes.jsonl").write_text(
        episodes if episodes is not None else "".join(json.dumps(r) + "\n" for r in records)
    )
    if metrics != "absent":
        (path / "metrics.json").write_text(metrics if metrics is not None else "{}\n")


def _compare(d: Path, **baseline: str) -> list[str]:
    _run(d, "react", ["a", "b"])
    _run(d, "vanilla-rl", ["a", "b"], **baseline)
    return ["compare", "--method", "vanilla-rl", "--baseline", "react", "--task", "countdown", *SMOKE, "--runs", "runs"]


def _compare_unpaired(d: Path) -> list[str]:
    _run(d, "react", ["a", "b"])
    _run(d, "vanilla-rl", ["a", "c"])
    return ["compare", "--method", "vanilla-rl", "--baseline", "react", "--task", "countdown", *SMOKE, "--runs", "runs"]


def _cached_init(d: Path, damage: Callable[[Path], None]) -> list[str]:
    """Builds smoke's initial checkpoint in d/cache, damages it, and trains on that cache."""
    checkpoint = initial_checkpoint(load_profile("smoke"), 0, d / "cache")
    damage(checkpoint.base)
    return [*TRAIN, "--cache", str(d / "cache")]


def _truncate(directory: Path) -> None:
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])


def _wrong_checksum(directory: Path) -> None:
    marker = directory / "stage.json"
    info = json.loads(marker.read_text())
    info["files"]["model.safetensors"] = "0" * 64
    marker.write_text(json.dumps(info))


def _swap_two_ids(directory: Path) -> None:
    """Swaps the ids of the first two tokens of the vocabulary in tokenizer.json: the same file size, other episodes."""
    path = directory / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = sorted(vocab, key=vocab.__getitem__)[:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    path.write_text(json.dumps(tokenizer))


def _model_dir(d: Path, fill: Callable[[Path], None]) -> list[str]:
    (d / "model").mkdir()
    fill(d / "model")
    return [*TRAIN, "--model", str(d / "model"), "--cache", str(d / "cache")]


def _tiny_checkpoint(path: Path) -> None:
    tokenizer = build_tokenizer(suite_vocabulary(load_profile("smoke")))
    save_checkpoint(build_tiny_model(ModelConfig(16, 1, 1, 32, 64), tokenizer, 0), tokenizer, path)


def _truncated_model(path: Path) -> None:
    _tiny_checkpoint(path)
    _truncate(path)


def _model_file(name: str, content: bytes) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        (d / name).write_bytes(content)
        return [*TRAIN, "--model", str(d / name), "--cache", str(d / "cache")]

    return make


def _data_out_foreign_dir(d: Path) -> list[str]:
    (d / "notes").mkdir()
    (d / "notes" / "keep.txt").write_text("mine\n")
    return ["data", "build", "--task", "countdown", *SMOKE, "--out", str(d / "notes")]


def _data_out_file(d: Path) -> list[str]:
    (d / "out").write_text("a file\n")
    return ["data", "build", "--task", "countdown", *SMOKE, "--out", str(d / "out")]


def _runs_is_a_file(d: Path) -> list[str]:
    (d / "runs").write_text("not a folder\n")
    return ["eval", "--method", "react", "--task", "countdown", *SMOKE, "--runs", str(d / "runs"), "--cache", "c"]


def _compare_out_is_a_dir(d: Path) -> list[str]:
    (d / "table").mkdir()
    return [*_compare(d), "--out", str(d / "table")]


def _profile_dir(d: Path) -> list[str]:
    (d / "dir.yaml").mkdir()
    return ["tasks", "list", "--profile", str(d / "dir.yaml")]


def _profile_folder(d: Path) -> list[str]:
    (d / "profiles").mkdir()
    return ["tasks", "list", "--profile", str(d / "profiles")]


def _profile_binary(d: Path) -> list[str]:
    (d / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage\x9c")
    return ["tasks", "list", "--profile", str(d / "bin.yaml")]


def _data_build(task: str, records: list[dict]) -> Callable[[Path], list[str]]:
    """Writes `records` to d/data.jsonl and builds the task's data from it (smoke's other settings)."""

    def make(d: Path) -> list[str]:
        (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return ["data", "build", "--task", task, *SMOKE, "--data", str(d / "data.jsonl"), "--out", str(d / "built")]

    return make


GSM8K = [{"question": f"Ana has {i} pens and buys 1 more. How many?", "answer": f"#### {i + 1}"} for i in range(20)]
HOTPOT = {
    "_id": "q1",
    "question": "Where was Ilsa Varn born?",
    "answer": "Oskby",
    "supporting_facts": [["Ilsa Varn", 1]],
    "context": [["Ilsa Varn", ["Ilsa Varn is a painter.", "She was born in Oskby."]], ["Tarn", ["Tarn is a town."]]],
}


def _report_cut_short(d: Path) -> list[str]:
    _run(d, "react", ["a"], metrics='{"n_episodes": 2}\n')
    return ["report", *SMOKE, "--runs", "runs", "--results", "out"]


def _compare_extra_episode(d: Path) -> list[str]:
    _run(d, "react", ["a", "b"], metrics='{"n_episodes": 2}\n')
    _run(d, "vanilla-rl", ["a", "b", "c"], metrics='{"n_episodes": 2}\n')
    return ["compare", "--method", "vanilla-rl", "--baseline", "react", "--task", "countdown", *SMOKE, "--runs", "runs"]


CASES = [
    # command line
    Case("unknown-command", _args("frobnicate"), "No such command 'frobnicate'"),
    Case("unknown-option", _args("tasks", "list", "--colour"), "No such option '--colour'"),
    Case("missing-option", _args("train", "--task", "countdown"), "Missing option '--method'"),
    Case("seed-not-int", _args(*TRAIN, "--seed", "one"), "'one' is not a valid integer"),
    Case("seed-negative", _args(*TRAIN, "--seed", "-3"), "-3 is not in the range 0<=x<=4294967295"),
    Case("unknown-task", _args("tasks", "show", "maze"), "unknown task 'maze'"),
    Case("unknown-method", _args("train", "--method", "ppo", "--task", "countdown", *SMOKE), "unknown method 'ppo'"),
    Case("task-not-in-profile", _args("eval", "--method", "react", "--task", "maze", *SMOKE), "not in profile"),
    Case("lora-without-model", _args(*TRAIN, "--lora"), "--lora needs --model"),
    Case("jobs-zero", _args("reproduce", *SMOKE, "--jobs", "0"), "--jobs must be at least 1"),
    Case("threads-zero", _args("reproduce", *SMOKE, "--jobs", "2", "--threads", "0"), "--threads must be at least 1"),
    Case("address-without-ray", _args("reproduce", *SMOKE, "--address", "auto"), "--address needs --backend ray"),
    Case("backend-unknown", _args("reproduce", *SMOKE, "--backend", "slurm"), "'slurm' is not one of 'local', 'ray'"),
    Case("sweep-varies-nothing", _args("sweep", *SMOKE, "--name", "x"), "sweep 'x' varies nothing"),
    Case("sweep-vary-malformed", _args("sweep", *SMOKE, "--name", "x", "--vary", "steps"), "is not KEY=V1,V2"),
    Case(
        "sweep-vary-unknown-key",
        _args("sweep", *SMOKE, "--name", "x", "--vary", "stages.fc-rl.stepz=1,2"),
        "unknown key 'stepz'",
    ),
    Case(
        "sweep-seeds-not-int",
        _args("sweep", *SMOKE, "--name", "x", "--vary", "stages.fc-rl.steps=1,2", "--seeds", "a"),
        "--seeds must be comma-separated integers",
    ),
    # profile files
    Case(
        "numerics-unknown",
        _args("tasks", "list"),
        "HARNESS_NUMERICS must be one of pinned, native, got 'fast'",
        env=(("HARNESS_NUMERICS", "fast"),),
    ),
    Case("unknown-profile", _args("tasks", "list", "--profile", "fast"), "unknown profile 'fast'"),
    Case("profile-missing", _args("tasks", "list", "--profile", "/nonexistent/p.yaml"), "does not exist"),
    Case("profile-is-a-directory", _profile_dir, "is not a file"),
    Case("profile-not-text", _profile_binary, "is not UTF-8 text"),
    Case("profile-bad-yaml", _profile("tasks: {countdown: [\n", "tasks", "list"), "is not valid YAML"),
    Case("profile-not-a-mapping", _profile("- countdown\n", "tasks", "list"), "must be a mapping"),
    Case("profile-unknown-key", _profile(SMALL + "epochs: 3\n", "tasks", "list"), "unknown key 'epochs'"),
    Case("profile-wrong-type", _profile(SMALL + "seeds: zero\n", "tasks", "list"), "seeds must be a list"),
    Case("profile-no-seeds", _profile(SMALL + "seeds: []\n", "tasks", "show", "countdown"), "lists no seeds"),
    Case(
        "profile-negative-seed",
        _profile(SMALL + "seeds: [-1]\n", "tasks", "list"),
        "seeds must be in [0, 4294967295], got -1",
    ),
    Case("profile-no-tasks", _profile("seeds: [0]\n", "tasks", "list"), "names no tasks"),
    Case("profile-unknown-task", _profile("tasks: {maze: {}}\n", "tasks", "list"), "p.yaml: unknown task 'maze'"),
    Case(
        "knob-unknown",
        _profile("tasks: {countdown: {size: 3}}\n", "tasks", "list"),
        "unknown key 'size' in tasks.countdown",
    ),
    Case("knobs-not-a-mapping", _profile("tasks: {countdown: 3}\n", "tasks", "list"), "tasks.countdown must be a"),
    Case("stage-not-a-mapping", _profile(SMALL + "stages: {sft: 3}\n", *TRAIN[:5]), "stages.sft must be a mapping"),
    Case(
        "knob-out-of-range",
        _profile("tasks: {countdown: {n_test: 0}}\n", "tasks", "list"),
        "tasks.countdown.n_test must be in [1, 100000], got 0",
    ),
    Case("model-wrong-type", _profile(SMALL + "model: {hidden_size: big}\n", *TRAIN[:5]), "hidden_size must be int"),
    Case("stage-unknown-key", _profile(SMALL + "stages: {sft: {epochs: 2}}\n", *TRAIN[:5]), "unknown key 'epochs'"),
    Case("eval-unknown-key", _profile(SMALL + "eval: {beams: 4}\n", "eval", *TRAIN[1:5]), "unknown key 'beams'"),
    Case("profile-unknown-method", _profile(SMALL + "methods: [ppo]\n", "reproduce"), "unknown method 'ppo'"),
    # profile and argument validation (issue 28)
    Case("seed-too-large", _args(*TRAIN, "--seed", str(2**70)), f"{2**70} is not in the range 0<=x<=4294967295"),
    Case("probe-seed-too-large", _args("probe", *SMOKE, "--seed", str(2**32)), "is not in the range 0<=x<="),
    Case("profile-seed-too-large", _profile(SMALL + f"seeds: [{2**70}]\n", "tasks", "list"), "seeds must be in [0, 4"),
    Case(
        "rl-steps-negative",
        _profile(SMALL + "stages: {fc-rl: {steps: -2}}\n", *TRAIN[:5]),
        "fc-rl.steps must be >= 1, got -2",
    ),
    Case(
        "sft-tokens-negative",
        _profile(SMALL + "stages: {sft: {tokens: -4000}}\n", *TRAIN[:5]),
        "sft.tokens must be >= 1",
    ),
    Case(
        "stage-lr-zero",
        _profile(SMALL + "stages: {fe-sft: {lr: 0}}\n", *TRAIN[:5]),
        "stages.fe-sft.lr must be > 0, got 0.0",
    ),
    Case(
        "stage-group-of-one",
        _profile(SMALL + "stages: {rl: {num_generations: 1}}\n", *TRAIN[:5]),
        "must be >= 2, got 1",
    ),
    Case(
        "stage-share-above-1",
        _profile(SMALL + "stages: {rl: {heldout_like_share: 1.5}}\n", *TRAIN[:5]),
        "heldout_like_share must be in [0, 1), got 1.5",
    ),
    Case(
        "stage-misspelt",
        _profile(SMALL + "stages: {wm-amtt: {tokens: 9}}\n", *TRAIN[:5]),
        "unknown stage 'wm-amtt' (did you mean 'wm-amt'?",
    ),
    Case("stage-key-misspelt", _profile(SMALL + "stages: {sft: {token: 9}}\n", *TRAIN[:5]), "(did you mean 'tokens'?"),
    Case(
        "profile-name-escapes",
        _profile(SMALL + "name: ../../x\n", *TRAIN[:5]),
        "name '../../x' must be a plain folder name",
    ),
    Case(
        "profile-name-absolute",
        _profile(SMALL + "name: /tmp/x\n", *TRAIN[:5]),
        "name '/tmp/x' must be a plain folder name",
    ),
    Case("data-look-k-zero", _profile(SMALL + "data: {look_k: 0}\n", *TRAIN[:5]), "data.look_k must be >= 1, got 0"),
    Case("data-key-misspelt", _profile(SMALL + "data: {lookk: 2}\n", *TRAIN[:5]), "(did you mean 'look_k'?"),
    Case(
        "model-width-negative", _profile(SMALL + "model: {hidden_size: -32}\n", *TRAIN[:5]), "hidden_size must be >= 1"
    ),
    Case(
        "model-heads-do-not-divide",
        _profile(SMALL + "model: {hidden_size: 32, n_heads: 3}\n", *TRAIN[:5]),
        "n_heads (3) must divide hidden_size (32)",
    ),
    Case("model-key-misspelt", _profile(SMALL + "model: {n_head: 2}\n", *TRAIN[:5]), "(did you mean 'n_heads'?"),
    Case(
        "eval-batch-zero",
        _profile(SMALL + "eval: {batch_size: 0}\n", "eval", *TRAIN[1:5]),
        "eval.batch_size must be >= 1, got 0",
    ),
    Case(
        "eval-key-misspelt",
        _profile(SMALL + "eval: {batchsize: 4}\n", "eval", *TRAIN[1:5]),
        "(did you mean 'batch_size'?",
    ),
    Case("knob-misspelt", _profile("tasks: {countdown: {n_trian: 4}}\n", "tasks", "list"), "(did you mean 'n_train'?"),
    Case("task-misspelt", _args("tasks", "show", "countdwn"), "unknown task 'countdwn' (did you mean 'countdown'?"),
    Case(
        "method-misspelt",
        _args("train", "--method", "foresigt", "--task", "countdown", *SMOKE),
        "(did you mean 'foresight'?",
    ),
    Case(
        "profile-misspelt", _args("tasks", "list", "--profile", "smok"), "unknown profile 'smok' (did you mean 'smoke'?"
    ),
    Case("profile-is-a-folder", _profile_folder, "profiles is a directory, not a profile"),
    Case(
        "profile-show-misspelt",
        _args("profile", "show", "defualt"),
        "unknown profile 'defualt' (did you mean 'default'?",
    ),
    Case("profile-show-bad-knob", _profile_show("tasks: {countdown: {n_numbers: 9}}\n"), "n_numbers must be in [2, 6]"),
    Case(
        "kill-at-bad-count",
        _args(*TRAIN),
        "HARNESS_KILL_AT='data:x': the count after ':' must be an integer >= 1",
        env=(("HARNESS_KILL_AT", "data:x"),),
    ),
    Case(
        "kill-at-unknown-point",
        _args(*TRAIN),
        "names no fault point (did you mean 'data'?",
        env=(("HARNESS_KILL_AT", "dta"),),
    ),
    # data files and run directories
    Case("episodes-bad-json", lambda d: _compare(d, episodes="{not json\n"), "episodes.jsonl:1: not valid JSON"),
    Case("episodes-not-a-record", lambda d: _compare(d, episodes='{"x": 1}\n'), "episodes.jsonl:1: not an episode"),
    Case("metrics-bad-json", lambda d: _compare(d, metrics="{"), "unreadable manifest or metrics"),
    Case("run-incomplete", lambda d: _compare(d, metrics="absent"), "1 run(s) missing or incomplete"),
    Case("runs-unpaired", _compare_unpaired, "did not play the same episodes"),
    Case("runs-is-a-file", _runs_is_a_file, "Not a directory"),
    Case("report-without-runs", _args("report", *SMOKE, "--runs", "runs", "--results", "out"), "no complete runs"),
    Case("data-out-is-a-file", _data_out_file, "is not a directory"),
    Case("data-out-foreign-dir", _data_out_foreign_dir, "were not written by `harness data build`"),
    # cached checkpoints
    Case("cache-truncated-safetensors", lambda d: _cached_init(d, _truncate), "does not match the sha256"),
    Case("cache-wrong-checksum", lambda d: _cached_init(d, _wrong_checksum), "does not match the sha256"),
    Case(
        "cache-tokenizer-ids-swapped",
        lambda d: _cached_init(d, _swap_two_ids),
        "tokenizer.json does not match the sha256 in stage.json); delete that directory",
    ),
    Case(
        "cache-extra-file",
        lambda d: _cached_init(d, lambda c: (c / "notes.txt").write_text("mine\n")),
        "notes.txt is not listed in stage.json",
    ),
    Case(
        "cache-missing-file",
        lambda d: _cached_init(d, lambda c: (c / "config.json").unlink()),
        "config.json is missing",
    ),
    Case(
        "cache-stage-json-broken",
        lambda d: _cached_init(d, lambda c: (c / "stage.json").write_text("{")),
        "stage.json is unreadable",
    ),
    # --model paths
    Case("model-missing", _args(*TRAIN, "--model", "/nonexistent/model"), "does not exist"),
    Case("model-no-config", lambda d: _model_dir(d, lambda m: None), "has no config.json"),
    Case("model-config-not-json", lambda d: _model_dir(d, lambda m: (m / "config.json").write_text("{")), "unreadable"),
    Case("model-not-causal-lm", lambda d: _model_dir(d, BertConfig().save_pretrained), "not a causal LM"),
    Case("model-truncated-weights", lambda d: _model_dir(d, _truncated_model), "could not be loaded"),
    Case("model-not-gguf-file", _model_file("weights.bin", b"\x00" * 16), "is a file but not a .gguf"),
    Case("model-gguf-without-package", _model_file("m.gguf", b"GGUF"), "needs the gguf package", hide=("gguf",)),
    Case("model-gguf-garbage", _model_file("m.gguf", b"GGUF" + b"\x00" * 12), "could not be loaded"),
    # harness compare arguments
    Case("compare-with-itself", _args("compare", "--method", "react", "--baseline", "react", *SMOKE), "with itself"),
    Case("compare-unknown-format", _args("compare", "--format", "xml", *SMOKE), "unknown format 'xml'"),
    Case("compare-unknown-method", _args("compare", "--method", "ppo", *SMOKE, "--runs", "r"), "unknown method 'ppo'"),
    Case("compare-task-not-in-profile", _args("compare", "--task", "maze", *SMOKE), "task 'maze' is not in profile"),
    Case("compare-missing-runs", _args("compare", *SMOKE, "--runs", "runs"), "run(s) missing"),
    Case("compare-out-is-a-dir", _compare_out_is_a_dir, "table: it is a directory"),
    # files and I/O (issue 28)
    Case("data-holds-no-records", _data_build("gsm8k", []), "/data.jsonl holds no records"),
    Case(
        "data-pools-too-small",
        _data_build("gsm8k", GSM8K),
        "train pool smaller than its dev pool (train 1, dev 15, test 4 from 20 records)",
    ),
    Case(
        "hotpotqa-repeated-id",
        _data_build("hotpotqa", [HOTPOT, dict(HOTPOT, question="Who is Ilsa Varn?")]),
        "data.jsonl:2: id 'hotpotqa-q1' is also the id of another record, at ",
    ),
    Case(
        "hotpotqa-sent-id-past-its-paragraph",
        _data_build("hotpotqa", [dict(HOTPOT, supporting_facts=[["Ilsa Varn", 2]])]),
        "data.jsonl:1: supporting fact ('Ilsa Varn', 2) names no sentence: that paragraph has 2",
    ),
    Case("verify-atol-nan", _args("verify", *SMOKE, "--atol", "nan"), "--atol must be a finite number >= 0, got nan"),
    # /sys refuses new files even to root, which chmod cannot arrange.
    Case(
        "compare-out-unwritable-folder",
        lambda d: [*_compare(d), "--out", "/sys/table.txt"],
        "cannot write /sys/table.txt: Permission denied in folder /sys",
    ),
    Case(
        "compare-hint-keeps-runs-and-cache",
        _args("compare", "--task", "countdown", *SMOKE, "--runs", "my-runs", "--cache", "my-cache"),
        "--seed 0 --profile smoke --runs my-runs --cache my-cache",
    ),
    Case(
        "compare-hint-keeps-a-profile-file",
        _profile(SMALL, "compare", "--runs", "r", "--cache", "c"),
        "/p.yaml --runs r --cache c",  # not `--profile p`, which names no profile
    ),
    Case(
        "report-episodes-cut-short",
        _report_cut_short,
        "run runs/smoke/countdown/react/seed0 is corrupt: its episodes.jsonl holds 1 episode(s), its metrics.json",
    ),
    Case("compare-episodes-added", _compare_extra_episode, "holds 3 episode(s), its metrics.json says 2"),
]


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def test_the_table_is_long_enough() -> None:
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_line(case: Case, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    argv = case.make(work)
    before = _snapshot(work)
    result = harness(argv, tmp_path / "logs", cwd=work, env=dict(case.env), hide=list(case.hide), timeout=120)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert case.message in lines[0], lines[0]
    after = _snapshot(work)
    assert {k: v for k, v in before.items() if after.get(k) != v} == {}, "an input was changed"
    added = sorted(set(after) - set(before))
    locks = [p for p in added if p.endswith(".lock")]
    # Lock files hold no data; the folders made to hold them are all else a failed command may add.
    assert all(p in locks or any(lock.startswith(p + "/") for lock in locks) for p in added), added
