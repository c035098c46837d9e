"""`harness view`: a static HTML browser of the run store (no server; open index.html or serve the folder).

- index.html: one row per complete run (task, method, seed, success with CI, format rate, ECE,
  fidelity@1, training tokens, wall time), sortable by any column (plain vendored JavaScript; the
  table reads the same without it), linked to each run's page, with the figures of the profile.
- runs/<task>/<method>/seed<k>.html: every test episode turn by turn; a foresight block shows
  each planned action with its predicted and actual observation (hit or miss written out, not
  only coloured), p beside Q* and Q_ref, and the episode's outcome; filters for solved/failed and
  held-out instances (CSS only); the run's reliability diagram.
- compare/<method>-vs-<baseline>.html: the same episodes of two methods side by side, paired by
  task, seed and episode as `harness compare` pairs them.

Pages come from Jinja2 templates with autoescape on: a model output is always shown as text.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.config import Profile
from harness.core.errors import HarnessError
from harness.core.runs import Run, is_complete, read_run, run_dir
from harness.core.store import atomic_dir
from harness.evaluation.compare import load_pairs
from harness.training.rewards import fidelity_hits

TEMPLATES = Path(__file__).parent / "templates"
STATIC = ("sort.js", "view.css")


@dataclass(frozen=True)
class RunRow:
    """One row of the index: where the run is, its page and its headline numbers."""

    task: str
    method: str
    seed: int
    page: str
    n_episodes: int
    success: float | None
    ci_low: float | None
    ci_high: float | None
    format_rate: float | None
    ece: float | None
    fidelity: float | None
    training_tokens: int
    wall_s: float | None


def store_runs(runs: Path, profile: str) -> list[tuple[str, str, int]]:
    """Returns (task, method, seed) of every complete run of a profile in the store, sorted."""
    found = []
    for path in sorted((runs / profile).glob("*/*/seed*")):
        seed = path.name.removeprefix("seed")
        if seed.isdigit() and is_complete(path):
            found.append((path.parent.parent.name, path.parent.name, int(seed)))
    return found


def run_page(task: str, method: str, seed: int) -> str:
    """Returns the path of a run's page relative to the site's root."""
    return f"runs/{task}/{method}/seed{seed}.html"


def index_row(run: Run, task: str, method: str, seed: int) -> RunRow:
    """Returns the index row of a run from its metrics and manifest."""
    m, wall = run.metrics, run.manifest.get("wall_s") or {}
    ci = m.get("success_ci") or {}
    return RunRow(
        task,
        method,
        seed,
        run_page(task, method, seed),
        int(m.get("n_episodes", len(run.records))),
        m.get("success"),
        ci.get("ci_low"),
        ci.get("ci_high"),
        m.get("format_rate"),
        m.get("ece_first"),
        m.get("fidelity@1"),
        int((m.get("cost") or {}).get("training_tokens") or 0),
        round(sum(wall.values()), 1) if wall else None,
    )


def block_steps(turn: dict[str, Any]) -> list[dict[str, Any]]:
    """Returns each step of a turn's foresight block: planned action, predicted and actual observation, hit.

    A step past the episode's end has no actual observation and counts as a miss, as in fidelity@k.
    """
    parsed = turn.get("parsed") or {}
    if "rollout" not in parsed:
        return []
    actual = turn.get("actual") or []
    hits = fidelity_hits(parsed["rollout"], actual)
    return [
        {"action": a, "predicted": o, "actual": actual[j] if j < len(actual) else None, "hit": hits[j]}
        for j, (a, o) in enumerate(zip(parsed["plan"], parsed["rollout"], strict=True))
    ]


def episode_view(record: dict[str, Any]) -> dict[str, Any]:
    """Returns an episode record with each turn's block steps and hit count, ready for the templates."""
    turns = []
    for turn in record["turns"]:
        steps = block_steps(turn)
        turns.append({**turn, "steps": steps, "hits": sum(s["hit"] for s in steps)})
    return {**record, "turns": turns}


def reliability_points(bins: list[dict[str, Any]] | None, size: int = 200) -> list[dict[str, Any]]:
    """Returns the non-empty reliability bins with SVG coordinates (x from mean p, y from accuracy)."""
    points = []
    for b in bins or []:
        if b["count"]:
            points.append({**b, "x": round(b["mean_p"] * size, 1), "y": round((1 - b["accuracy"]) * size, 1)})
    return points


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v, digits=3: "-" if v is None else f"{v:.{digits}f}"
    return env


def _compare_pages(profile: Profile, runs: Path, method: str, baseline: str, tasks: list[str]) -> list[dict]:
    """Returns, per task, the pairs of `harness compare` on the seeds both methods have complete."""
    sections = []
    for task in tasks:
        seeds = [
            s
            for s in profile.seeds
            if all(is_complete(run_dir(runs, profile.name, task, m, s)) for m in (method, baseline))
        ]
        if not seeds:
            continue
        for pair in load_pairs(profile, runs, method, baseline, [task], seeds):
            episodes = [
                (episode_view(a), episode_view(b))
                for a, b in zip(pair.method.records, pair.baseline.records, strict=True)
            ]
            sections.append({"task": task, "seed": pair.seed, "episodes": episodes})
    return sections


def _run_page(env: Any, tmp: Path, profile: str, run: Run, task: str, name: str, seed: int) -> RunRow:
    """Writes one run's page (its episodes, foresight blocks and reliability) under `tmp`; returns its index row."""
    row = index_row(run, task, name, seed)
    page = tmp / row.page
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(
        env.get_template("run.html.j2").render(
            root="../../../",
            row=row,
            metrics=run.metrics,
            episodes=[episode_view(r) for r in run.records],
            reliability=reliability_points(run.metrics.get("reliability")),
            profile=profile,
        )
    )
    return row


def write_site(
    profile: Profile,
    runs: Path,
    out: Path,
    figures: Path | None = None,
    method: str = "foresight",
    baseline: str = "sft-mimic",
) -> list[Path]:
    """Writes the site of a profile's runs to `out` (replaced whole, atomically); returns its pages.

    `figures`: a folder of PNG figures (`harness plot`/`reproduce` output) to show on the index.
    """
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / "index.html").is_file()):
        # The site replaces `out` whole: never a folder that holds anything but an earlier site.
        raise HarnessError(f"{out} exists and is not a site written by `harness view`; pick a new or empty folder")
    found = store_runs(runs, profile.name)
    if not found:
        raise HarnessError(f"no complete runs of profile {profile.name} under {runs}; run `harness reproduce` first")
    env = _environment()
    rows, pages = [], []
    with atomic_dir(out) as tmp:
        for name in STATIC:
            shutil.copy(TEMPLATES / name, tmp / name)
        for task, name, seed in found:
            run = read_run(run_dir(runs, profile.name, task, name, seed))
            rows.append(_run_page(env, tmp, profile.name, run, task, name, seed))
            pages.append(out / rows[-1].page)
        shown = sorted(figures.glob("*.png")) if figures and figures.is_dir() else []
        if shown:
            (tmp / "figures").mkdir()
            for png in shown:
                shutil.copy(png, tmp / "figures" / png.name)
        compared = {t for t, m, _ in found if m == method} & {t for t, m, _ in found if m == baseline}
        comparison = None
        if method != baseline and compared:
            comparison = f"compare/{method}-vs-{baseline}.html"
            (tmp / "compare").mkdir()
            sections = _compare_pages(profile, runs, method, baseline, sorted(compared))
            (tmp / comparison).write_text(
                env.get_template("compare.html.j2").render(
                    root="../", method=method, baseline=baseline, sections=sections, profile=profile.name
                )
            )
            pages.append(out / comparison)
        (tmp / "index.html").write_text(
            env.get_template("index.html.j2").render(
                root="",
                rows=rows,
                profile=profile.name,
                figures=[f"figures/{p.name}" for p in shown],
                comparison=comparison,
                method=method,
                baseline=baseline,
            )
        )
    return [out / "index.html", *pages]
