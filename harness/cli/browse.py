"""The commands that list and build what runs read, and show what they wrote: tasks, methods, profile, data, view.

None of them trains: `harness tasks list|show`, `harness methods list`, `harness profile show` (every
resolved field with its help), `harness data build|synth` (the data recipes and generated records) and
`harness view` (the HTML browser of the run store).
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import DATA, PROFILE, RUNS, SEED, resolve_profile, results_folder
from harness.core.errors import HarnessError


@click.group()
def tasks() -> None:
    """List and inspect the registered tasks."""


@tasks.command("list")
@PROFILE
def tasks_list(profile: str) -> None:
    """One line per registered task: family, vocabulary and split sizes at the profile's knobs."""
    from harness.core.config import load_profile
    from harness.core.registry import make_task, task_names

    prof = load_profile(profile)
    for name in task_names():
        task = make_task(name, prof.tasks.get(name))
        c = task.config
        try:
            vocab = str(len(task.vocabulary()))
        except HarnessError:  # a task read from data files the profile does not point at
            vocab = "-"
        click.echo(f"{name:<12} {task.family:<7} vocab={vocab:<5} train={c.n_train} dev={c.n_dev} test={c.n_test}")


@tasks.command("show")
@click.argument("name")
@PROFILE
def tasks_show(name: str, profile: str) -> None:
    """Knobs, vocabulary size, split sizes and an example expert episode in both formats."""
    from harness.core.config import load_profile
    from harness.reporting.describe import describe_task

    click.echo(describe_task(name, load_profile(profile)))


@click.group()
def data() -> None:
    """Build the data recipes (D_expert, D_look, D_world)."""


@data.command("build")
@click.option("--task", "task_name", required=True, help="a registered task")
@PROFILE
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="default: results/data/<profile>/<task>/seed<k>"
)
@DATA
def data_build(task_name: str, profile: str, seed: int, out: Path | None, data_path: str | None) -> None:
    """Builds D_expert, D_look, D_world and the probe items; prints sizes, token counts and coverage."""
    from harness.core.registry import make_task
    from harness.data.audit import audit_lines
    from harness.data.recipes import build_corpora, check_out_dir, corpus_stats, save_corpora
    from harness.evaluation.probes.items import PROBE_FILES, jsonl_text, probe_items
    from harness.training.budgets import epoch_lines

    prof = resolve_profile(profile, None, False, task_name, data_path)
    task = make_task(task_name, prof.tasks.get(task_name))
    out = out or Path("results/data") / prof.name / task_name / f"seed{seed}"
    check_out_dir(out)  # before the work, not after it
    task.splits(seed)  # a task read from data files reads (and checks) them here, before any output
    click.echo(f"building {task_name} data, profile {prof.name}, seed {seed} ...", err=True)
    corpora = build_corpora(task, prof.data, seed)
    stats = corpus_stats(corpora)
    probes = probe_items(task, prof.data, seed)
    save_corpora(corpora, out, stats, {PROBE_FILES[name]: jsonl_text(rows) for name, rows in probes.items()})
    for name in ("D_expert", "D_look", "D_world"):
        s = stats[name]
        click.echo(f"{name:<9} rows={s['rows']:<6} tokens={s['tokens']:<8} agent_tokens={s['agent_tokens']}")
    for line in epoch_lines(prof, {name: stats[name]["tokens"] for name in ("D_expert", "D_look", "D_world")}):
        click.echo(line)
    click.echo(f"probes    {' '.join(f'{PROBE_FILES[n]}={len(r)}' for n, r in probes.items())} (test-side items)")
    cov = stats["coverage"]
    click.echo(
        f"coverage  test episodes needing parts no train expert episode shows: {cov['test_needs_unseen']:.0%}; "
        f"of those {int(cov['unseen_parts'])} parts, D_world shows {cov['unseen_in_world']:.0%}"
    )
    pt = stats["p_targets"]
    click.echo(
        f"p targets (D_look, reference policy of harness.data.reference): n={pt['n']} mean={pt['mean']:.3f} "
        f"share at 1.0={pt['share_1.0']:.0%}"
    )
    click.echo("          " + " ".join(f"{w}:{c}" for w, c in pt["histogram"].items()))
    for line in audit_lines(corpora.audit):
        click.echo(line)
    click.echo(f"expert success on train: {stats['expert_success']:.0%}")
    records = getattr(task, "record_report", None)
    if records is not None:
        click.echo("records   " + " ".join(f"{k}={v}" for k, v in records().items()))
    report = getattr(task, "annotation_report", None)
    if report is not None:
        click.echo("annotations " + " ".join(f"{k}={v}" for k, v in report().items()))
    click.echo(f"written to {out}")


@data.command("synth")
@click.option("--schema", required=True, type=click.Choice(["gsm8k", "hotpotqa"]), help="the published schema to write")
@click.option("--n", "n", default=200, show_default=True, type=int, help="records to generate")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="a .jsonl, .json or .parquet file, or a folder (gets train.jsonl and test.jsonl)",
)
@click.option(
    "--layout",
    default="original",
    show_default=True,
    type=click.Choice(["original", "hub"]),
    help="hotpotqa: lists of pairs (original JSON) or dicts of lists (datasets hub)",
)
def data_synth(schema: str, n: int, seed: int, out: Path, layout: str) -> None:
    """Writes generated records in the GSM8K or HotpotQA schema (template problems, a generated KB)."""
    from harness.data.synth import synth

    for path in synth(schema, n, seed, out, layout):
        click.echo(f"wrote {path}")


@click.group()
def profile() -> None:
    """Show a profile as it resolves."""


@profile.command("show")
@click.argument("name")
def profile_show(name: str) -> None:
    """Every resolved field of profile NAME (a shipped name or a .yaml path) with its value and help, by section."""
    from harness.core.config import load_profile, render_profile

    click.echo(render_profile(load_profile(name)))


@click.group()
def methods() -> None:
    """List the registered methods and their stages."""


@methods.command("list")
@PROFILE
def methods_list(profile: str) -> None:
    """One line per method: its format and its stages with their token or step budgets."""
    from harness.core.config import load_profile
    from harness.core.registry import method_factory, method_names
    from harness.training.stages import stage_kind

    prof = load_profile(profile)
    for name in method_names():
        method = method_factory(name)(prof)
        stages = [f"{s.name}({s.data}, {stage_kind(s.kind).budget(s.settings)})" for s in method.stages]
        click.echo(f"{name:<24} {method.fmt:<10} {' -> '.join(stages) or 'no training (few-shot prompting)'}")


@click.command()
@PROFILE
@RUNS
@click.option("--out", type=click.Path(path_type=Path), default=None, help="default: results/view/<profile>")
@click.option("--method", "method_name", default="foresight", show_default=True, help="left side of the compare page")
@click.option("--baseline", default="sft-mimic", show_default=True, help="right side of the compare page")
def view(profile: str, runs: Path, out: Path | None, method_name: str, baseline: str) -> None:
    """Writes a static HTML browser of the stored runs: an index, a page per run, a compare page."""
    from harness.core.config import load_profile
    from harness.core.registry import method_factory
    from harness.reporting.view import write_site

    prof = load_profile(profile)
    for name in (method_name, baseline):
        method_factory(name)  # an unknown name fails before anything is written
    out = out or Path("results/view") / prof.name
    pages = write_site(prof, runs, out, results_folder(prof) / "figures", method_name, baseline)
    click.echo(f"wrote {len(pages)} pages to {out}")
    click.echo(f"open {out / 'index.html'} in a browser, or serve it: python -m http.server -d {out}")
