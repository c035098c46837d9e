"""Figures from the run store: one per claim, one style, every axis with its units and n.

Reads `runs/<profile>/<task>/<method>/seed<k>/metrics.json` (a run counts once metrics.json exists),
`manifest.json` for stage hashes and `cache/<hash>/log.jsonl` for training curves. A null metric means
"not applicable" (react has no p): it leaves a gap, never a zero. A method keeps one colour everywhere.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from harness.core.errors import HarnessError  # noqa: E402
from harness.core.store import current_umask  # noqa: E402

METHOD_ORDER = (
    "react", "sft-mimic", "vanilla-rl", "foresight",
    "foresight-no-rl", "foresight-no-amt", "foresight-success-only", "foresight-no-order",
)  # fmt: skip
METHOD_COLORS = dict(
    zip(METHOD_ORDER, ("#7f7f7f", "#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"))
)
EXTRA_COLORS = ("#bcbd22", "#2ca02c", "#393b79", "#637939", "#843c39")
STAGE_ORDER = ("wm-amt", "fe-sft", "sft", "fc-rl", "rl")
TASK_MARKERS = ("o", "s", "^", "D", "v", "P")
TASK_LINES = ("-", "--", ":", "-.")
FIGURES = ("success", "reliability", "fidelity", "format_capability", "training_curves", "selection_gain")
STYLE = {
    "font.family": "sans-serif", "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9,
    "legend.fontsize": 8, "legend.frameon": False, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "axes.grid": True, "grid.color": "0.9", "grid.linewidth": 0.6, "axes.axisbelow": True,
    "axes.spines.top": False, "axes.spines.right": False, "lines.linewidth": 1.4, "lines.markersize": 4,
    "savefig.bbox": "tight", "pdf.fonttype": 42,
}  # fmt: skip
TEXT = {"task", "method", "reliability", "reliability_bins_first"}


def load_metrics(runs: Path, profile: str) -> pd.DataFrame:
    """Returns one row per complete run: task, method, seed, every scalar metric, reliability bins as objects."""
    rows = []
    for path in sorted((runs / profile).glob("*/*/seed*/metrics.json")):
        run = path.parent
        try:
            metrics = json.loads(path.read_text())
            seed = int(run.name.removeprefix("seed"))
        except (OSError, ValueError) as err:
            raise HarnessError(f"unreadable run {run}: {err}") from err
        row: dict[str, Any] = {"task": run.parent.parent.name, "method": run.parent.name, "seed": seed}
        row.update({k: v for k, v in metrics.items() if v is None or isinstance(v, int | float)})
        ci = metrics.get("success_ci") or {}
        row.update(ci_low=ci.get("ci_low"), ci_high=ci.get("ci_high"))
        row["training_tokens"] = (metrics.get("cost") or {}).get("training_tokens")
        row["reliability"] = metrics.get("reliability")
        row["reliability_bins_first"] = metrics.get("reliability_bins_first")
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["task", "method", "seed"])
    frame = pd.DataFrame(rows)
    for column in set(frame.columns) - TEXT:
        frame[column] = pd.to_numeric(frame[column])
    frame["_rank"] = frame["method"].map(_rank)
    return frame.sort_values(["_rank", "method", "task", "seed"]).drop(columns="_rank").reset_index(drop=True)


def plot_all(runs: Path, cache: Path, profile: str, out: Path, methods: Sequence[str] | None = None) -> list[Path]:
    """Returns the PNG and PDF paths written to `out`; a figure whose data no run has is skipped."""
    frame = load_metrics(runs, profile)
    if methods is not None:
        frame = frame[frame["method"].isin(methods)]
    if frame.empty:
        raise HarnessError(f"no complete runs under {runs / profile}")
    order = list(methods) if methods is not None else sorted(set(frame["method"]), key=lambda m: (_rank(m), m))
    order = [m for m in order if m in set(frame["method"])]
    extra = iter(EXTRA_COLORS * len(order))
    colors = {m: METHOD_COLORS.get(m) or next(extra) for m in order}
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with plt.rc_context(STYLE):
        figures = {
            "success": _success(frame, order, colors),
            "reliability": _reliability(frame, order, colors),
            "fidelity": _fidelity(frame, order, colors),
            "format_capability": _format_capability(frame, order, colors),
            "training_curves": _training_curves(runs / profile, cache, frame, order, colors),
            "selection_gain": _selection_gain(frame, order, colors),
        }
        for name, fig in figures.items():
            if fig is None:  # a stale file would show data no run has any more
                for ext in ("png", "pdf"):
                    (out / f"{name}.{ext}").unlink(missing_ok=True)
            else:
                written += _save(fig, out, name)
    return written


def _rank(method: str) -> int:
    """Returns the method's place in the fixed order (baselines, foresight, ablations, then others)."""
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _save(fig: Figure, out: Path, name: str) -> list[Path]:
    """Returns the PNG (dpi 150) and PDF paths of `fig`, each written through a temp file and a rename."""
    paths = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
        target = out / f"{name}.{ext}"
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=out)
        os.fchmod(fd, 0o666 & ~current_umask())  # as `open` would make it, not mkstemp's 0600
        os.close(fd)
        try:
            fig.savefig(tmp, format=ext, dpi=150, metadata=meta)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(target)
    plt.close(fig)
    return paths


def _span(values: Any, unit: str) -> str:
    """Returns "3 seeds" or "2–3 seeds" for the distinct integer values given."""
    found = sorted({int(v) for v in values if pd.notna(v)})
    if not found:
        return f"? {unit}"
    return f"{found[0]} {unit}" if len(found) == 1 else f"{found[0]}–{found[-1]} {unit}"


def _n_label(frame: pd.DataFrame, task: str) -> str:
    """Returns "n = S seeds × E episodes" for one task's runs."""
    runs = frame[frame["task"] == task]
    seeds = runs.groupby("method")["seed"].nunique()
    episodes = runs["n_episodes"] if "n_episodes" in runs else pd.Series(dtype=float)
    return f"n = {_span(seeds, 'seeds')} × {_span(episodes, 'episodes')}"


def _with(frame: pd.DataFrame, column: str, order: list[str]) -> list[str]:
    """Returns the methods in `order` with a non-null `column` in some run."""
    if column not in frame:
        return []
    return [m for m in order if frame.loc[frame["method"] == m, column].notna().any()]


def _method_legend(methods: list[str], colors: dict[str, str]) -> list[Patch]:
    """Returns one legend patch per method, in its fixed colour."""
    return [Patch(color=colors[m], label=m) for m in methods]


def _bars(ax: Axes, frame: pd.DataFrame, column: str, methods: list[str], colors: dict[str, str]) -> list[str]:
    """Returns the tasks on the x axis after drawing mean-over-seeds bars, error bars and one dot per seed."""
    tasks = sorted(set(frame["task"]))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        for j, task in enumerate(tasks):
            runs = frame[(frame["method"] == method) & (frame["task"] == task) & frame[column].notna()]
            if runs.empty:
                continue
            x, values = j + (i - (len(methods) - 1) / 2) * width, runs[column]
            mean, std = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else np.nan
            low, high = (runs["ci_low"].iloc[0], runs["ci_high"].iloc[0]) if column == "success" else (np.nan, np.nan)
            err = [[std], [std]] if len(values) > 1 else [[mean - low], [high - mean]]
            ax.bar(x, mean, width * 0.9, color=colors[method])
            if not np.isnan(err[0][0]):
                ax.errorbar(x, mean, yerr=err, color="black", capsize=2, linewidth=0.8)
            ax.scatter(np.full(len(values), x), values, s=7, color="black", zorder=3, linewidths=0)
    ax.set_xticks(range(len(tasks)), [f"{t}\n{_n_label(frame, t)}" for t in tasks])
    ax.grid(axis="x", visible=False)
    return tasks


def _success(frame: pd.DataFrame, order: list[str], colors: dict[str, str]) -> Figure:
    """Returns the success figure: bars per method and task, seed dots, random-policy dashes."""
    methods = _with(frame, "success", order)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 0.45 * len(methods) * frame["task"].nunique()), 3.6))
    tasks = _bars(ax, frame, "success", methods, colors)
    handles: list[Any] = _method_legend(methods, colors)
    if "random_policy_success" in frame and frame["random_policy_success"].notna().any():
        for j, task in enumerate(tasks):
            level = frame.loc[frame["task"] == task, "random_policy_success"].mean()
            ax.hlines(level, j - 0.45, j + 0.45, colors="black", linestyles="dashed", linewidth=1)
        handles.append(Line2D([], [], color="black", linestyle="dashed", label="random policy"))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (share of test episodes)")
    ax.set_title("Success: mean over seeds; error bar = std over seeds (95% bootstrap CI if one seed); dot = seed")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _pool(lists: list[list[dict]]) -> pd.DataFrame:
    """Returns reliability bins pooled over seeds: count-weighted mean p and accuracy per bin."""
    bins = pd.DataFrame([{**b, "bin": i} for bins in lists for i, b in enumerate(bins)])
    bins = bins[bins["count"] > 0].astype({"mean_p": float, "accuracy": float})
    bins["p_sum"], bins["hits"] = bins["mean_p"] * bins["count"], bins["accuracy"] * bins["count"]
    pooled = bins.groupby("bin").agg(lo=("lo", "first"), hi=("hi", "first"), count=("count", "sum"),
                                     p_sum=("p_sum", "sum"), hits=("hits", "sum"))  # fmt: skip
    return pooled.assign(mean_p=pooled["p_sum"] / pooled["count"], accuracy=pooled["hits"] / pooled["count"])


def _has_counts(bins: Any) -> bool:
    """Returns whether a run's reliability bins (a list, or NaN when the run has none) hold a turn."""
    return isinstance(bins, list) and any(b["count"] for b in bins)


def _reliability(frame: pd.DataFrame, order: list[str], colors: dict[str, str]) -> Figure | None:
    """Returns reliability diagrams of first-turn p, a panel per method with p (its tasks and seeds pooled),
    the number of first turns written on each bin's bar; None when no run has a first-turn p."""
    if "reliability_bins_first" not in frame:
        return None
    found = {m: [r for r in frame.loc[frame["method"] == m, "reliability_bins_first"] if _has_counts(r)] for m in order}
    methods = [m for m in order if found[m]]
    if not methods:
        return None
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.2), squeeze=False)
    for ax, method in zip(axes[0], methods):
        pooled = _pool(found[method])
        runs = frame[frame["method"] == method]
        counts = ax.twinx()
        centres, widths = (pooled["lo"] + pooled["hi"]) / 2, (pooled["hi"] - pooled["lo"]) * 0.85
        bars = counts.bar(centres, pooled["count"], width=widths, color="0.85", linewidth=0)
        counts.bar_label(bars, labels=[str(int(c)) for c in pooled["count"]], fontsize=6, color="0.35")
        counts.set_ylim(0, pooled["count"].max() * 3)
        counts.grid(False)
        counts.set_ylabel("first turns in bin (n)" if method == methods[-1] else "")
        ax.set_zorder(counts.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot([0, 1], [0, 1], linestyle="dashed", color="0.5", linewidth=1)
        ax.plot(pooled["mean_p"], pooled["accuracy"], marker="o", color=colors[method])
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="mean first-turn p in bin")
        ece = runs["ece_first"].mean() if "ece_first" in runs else float("nan")
        tasks, seeds = runs["task"].nunique(), len(found[method])
        n = int(pooled["count"].sum())
        ax.set_title(f"{method}\nECE (first turn, mean) {ece:.3f}, n = {n} episodes, {tasks} tasks, {seeds} runs")
        ax.set_ylabel("observed success (share)" if method == methods[0] else "")
    fig.suptitle("Reliability of first-turn p, tasks and seeds pooled (dashed: perfect calibration; "
                 "grey bars: first turns per bin, count on each bar)")  # fmt: skip
    fig.tight_layout()
    return fig


def _fidelity(frame: pd.DataFrame, order: list[str], colors: dict[str, str]) -> Figure | None:
    """Returns rollout fidelity against horizon step k, a panel per task, or None when no run has rollouts."""
    found = [c for c in frame.columns if c.startswith("fidelity@") and frame[c].notna().any()]
    columns = sorted(found, key=lambda c: int(c.split("@")[1]))
    methods = [m for m in order if columns and frame.loc[frame["method"] == m, columns].notna().any().any()]
    if not methods:
        return None
    tasks = sorted(set(frame["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.0), squeeze=False, sharey=True)
    steps = [int(c.split("@")[1]) for c in columns]
    for ax, task in zip(axes[0], tasks):
        for method in methods:
            runs = frame.loc[(frame["method"] == method) & (frame["task"] == task), columns]
            if runs.notna().any().any():
                spread = runs.std(ddof=1).fillna(0)
                ax.errorbar(steps, runs.mean(), yerr=spread, color=colors[method], marker="o", capsize=2)
        ax.set(xticks=steps, ylim=(0, 1.02), xlabel="horizon step k (actions ahead)")
        ax.set_title(f"{task}\n{_n_label(frame, task)}")
    axes[0, 0].set_ylabel("rollout fidelity\n(share of predicted obs. exact)")
    fig.legend(handles=_method_legend(methods, colors), loc="upper left", bbox_to_anchor=(1.0, 0.9))
    fig.suptitle("Rollout fidelity by horizon step: mean over seeds, error bar = std over seeds")
    fig.tight_layout()
    return fig


def _format_capability(frame: pd.DataFrame, order: list[str], colors: dict[str, str]) -> Figure | None:
    """Returns format rate against capability (fidelity@1, 1 − ECE), or None when neither is known."""
    panels = [(c, label) for c, label in (("fidelity@1", "rollout fidelity at k = 1 (share exact)"),
              ("ece_all", "1 − ECE, all turns")) if c in frame and frame[c].notna().any()]  # fmt: skip
    if "format_rate" not in frame or not panels:
        return None
    tasks = sorted(set(frame["task"]))
    means = frame.groupby(["method", "task"])[["format_rate"] + [c for c, _ in panels]].mean().reset_index()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    shown: set[str] = set()
    for ax, (column, label) in zip(axes[0], panels):
        ax.add_patch(Rectangle((0.8, 0), 0.22, 0.5, color="#d62728", alpha=0.07, linewidth=0))
        region = "format without capability\n(format ≥ 0.8, capability ≤ 0.5)"
        ax.text(1.0, 0.02, region, ha="right", va="bottom", fontsize=7, color="#a03030")
        for _, row in means.dropna(subset=["format_rate", column]).iterrows():
            y = 1 - row[column] if column == "ece_all" else row[column]
            marker = TASK_MARKERS[tasks.index(row["task"]) % len(TASK_MARKERS)]
            ax.scatter(row["format_rate"], y, color=colors[row["method"]], marker=marker, s=30, zorder=3)
            shown.add(row["method"])
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="format rate (share of turns that parse)", ylabel=label)
    handles: list[Any] = _method_legend([m for m in order if m in shown], colors)
    for k, task in enumerate(tasks):
        label = f"{task} ({_n_label(frame, task)})"
        handles.append(Line2D([], [], color="black", marker=TASK_MARKERS[k % 6], linestyle="", label=label))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.9))
    fig.suptitle("Format vs capability: one point per method and task, mean over seeds")
    fig.tight_layout()
    return fig


def _stage_logs(root: Path, cache: Path, frame: pd.DataFrame, order: list[str]) -> dict[str, dict[str, Any]]:
    """Returns per stage hash of the lowest seed: its name, task, first method using it and logged records."""
    logs: dict[str, dict[str, Any]] = {}
    for method in order:
        for task, runs in frame[frame["method"] == method].groupby("task"):
            seed = int(runs["seed"].min())
            manifest = root / task / method / f"seed{seed}" / "manifest.json"
            try:
                stages = json.loads(manifest.read_text()).get("stages") or []
            except (OSError, ValueError):
                stages = []
            for stage in stages:
                log = cache / str(stage.get("hash")) / "log.jsonl"
                if stage.get("hash") in logs or not log.exists():
                    continue  # a stage shared by methods (same hash) is drawn once, for the first
                records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
                records = [r for r in records if "step" in r and ("loss" in r or "reward" in r)]
                if records:
                    logs[stage["hash"]] = {"name": stage["name"], "task": task, "method": method,
                                           "seed": seed, "records": pd.DataFrame(records)}  # fmt: skip
    return logs


def _training_curves(
    root: Path, cache: Path, frame: pd.DataFrame, order: list[str], colors: dict[str, str]
) -> Figure | None:
    """Returns loss (and reward for RL stages) against step, a column per stage name, or None without logs."""
    logs = _stage_logs(root, cache, frame, order)
    if not logs:
        return None
    names = sorted({s["name"] for s in logs.values()}, key=lambda n: (STAGE_ORDER + (n,)).index(n))
    rewarded = {s["name"] for s in logs.values() if "reward" in s["records"]}
    tasks = sorted(set(frame["task"]))
    rows = 2 if rewarded else 1
    fig, axes = plt.subplots(rows, len(names), figsize=(3.0 * len(names), 2.6 * rows), squeeze=False)
    for j, name in enumerate(names):
        for stage in (s for s in logs.values() if s["name"] == name):
            style = {"color": colors[stage["method"]], "linestyle": TASK_LINES[tasks.index(stage["task"]) % 4]}
            records = stage["records"]
            for i, column in enumerate(("loss", "reward")[:rows]):
                if column in records and records[column].notna().any():
                    points = records.dropna(subset=[column])
                    axes[i, j].plot(points["step"], points[column], **style)
        seeds = _span([s["seed"] for s in logs.values() if s["name"] == name], "")
        axes[0, j].set(title=f"{name} (seed {seeds.strip()})", ylabel="GRPO loss" if name in rewarded else
                       "loss (nats/token)")  # fmt: skip
        axes[rows - 1 if name in rewarded else 0, j].set_xlabel("optimizer step")
        if rows == 2 and name in rewarded:
            axes[1, j].set_ylabel("mean reward per rollout")
        elif rows == 2:
            axes[1, j].set_axis_off()
    shown = [m for m in order if any(s["method"] == m for s in logs.values())]
    handles: list[Any] = _method_legend(shown, colors) + [
        Line2D([], [], color="black", linestyle=TASK_LINES[k % 4], label=t) for k, t in enumerate(tasks)
    ]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.9))
    fig.suptitle("Training curves, lowest seed (a stage shared by methods is drawn once, in its first method's colour)")
    fig.tight_layout()
    return fig


def _selection_gain(frame: pd.DataFrame, order: list[str], colors: dict[str, str]) -> Figure | None:
    """Returns selection gain bars per method with p and task, or None when no run has one."""
    methods = _with(frame, "selection_gain", order)
    if not methods:
        return None
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 0.45 * len(methods) * frame["task"].nunique()), 3.4))
    _bars(ax, frame, "selection_gain", methods, colors)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("selection gain (success rate,\npick by own p − random pick)")
    ax.set_title("Selection gain among sampled plans: mean over seeds; error bar = std over seeds; dot = seed")
    ax.legend(handles=_method_legend(methods, colors), loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig
