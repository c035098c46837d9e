"""`harness view` on a hand-made store: every run indexed, episodes counted, marks as worked out by hand,
model outputs escaped. The same pages in a real browser: tests/integration/test_view_browser.py."""

from __future__ import annotations

import re
from pathlib import Path

from harness.core.config import load_profile
from harness.reporting.view import block_steps, store_runs, write_site
from tests.cli_inprocess import run
from tests.view_store import HAND_MARKS, SCRIPT, foresight_records, write_store


def _article(page: str, episode: int) -> str:
    start = page.index(f'id="episode-{episode}"')
    return page[start : page.index("</article>", start)]


def test_block_steps_mark_each_predicted_observation() -> None:
    first, second = foresight_records()[0]["turns"][0], foresight_records()[1]["turns"][0]
    assert [s["hit"] for s in block_steps(first)] == [True, False]
    assert block_steps(second) == [{"action": "e3", "predicted": "at n5", "actual": None, "hit": False}]
    assert block_steps({"parsed": {"thought": "x"}}) == []


def test_the_site_indexes_every_run_and_shows_each_episode(tmp_path: Path) -> None:
    write_store(tmp_path / "runs")
    pages = write_site(load_profile("smoke"), tmp_path / "runs", tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text()
    assert store_runs(tmp_path / "runs", "smoke") == [
        ("graph-nav", "foresight", 0), ("graph-nav", "react", 0), ("graph-nav", "sft-mimic", 0)
    ]  # fmt: skip
    assert index.count('<tr class="run">') == 3
    for method in ("foresight", "react", "sft-mimic"):
        assert f'href="runs/graph-nav/{method}/seed0.html">{method}</a>' in index
    assert "0.667 [0.000, 1.000]" in index and "3000" in index  # success with CI, training tokens
    assert 'href="compare/foresight-vs-sft-mimic.html"' in index
    assert {p.name for p in pages} == {"index.html", "seed0.html", "foresight-vs-sft-mimic.html"}
    page = (tmp_path / "site" / "runs/graph-nav/foresight/seed0.html").read_text()
    assert page.count('<article class="episode') == 3 and '<span id="episode-count">3</span>' in page
    marks = re.findall(r'<td class="mark (hit|miss)">&#10003; hit|<td class="mark (hit|miss)">&#10007; miss', page)
    first = re.findall(r'class="mark (hit|miss)">&#1000[37]; (hit|miss)</td>', _article(page, 0))
    assert [kind for kind, word in first] == HAND_MARKS and all(k == w for k, w in first)
    assert len(marks) == 4  # 2 + 1 + 1 predicted observations in the three episodes
    assert "(episode over: none)" in _article(page, 1) and "held-out" in _article(page, 1)
    assert "p <strong>0.7</strong> · Q* 1.000 · Q_ref 0.800" in _article(page, 0)
    # A model output is text: the <script> of episode 0 is escaped, never markup.
    assert SCRIPT not in page and "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "<circle" in page  # the reliability diagram has its bins
    react = (tmp_path / "site" / "runs/graph-nav/react/seed0.html").read_text()
    assert "No foresight block with a p" in react and '<table class="block">' not in react
    compare = (tmp_path / "site" / "compare/foresight-vs-sft-mimic.html").read_text()
    assert compare.count('<div class="pair">') == 3


def test_view_command_writes_the_site_and_says_how_to_open_it(monkeypatch, capsys, tmp_path: Path) -> None:
    write_store(tmp_path / "runs")
    out = tmp_path / "site"
    code, stdout, _ = run(monkeypatch, capsys, "view", "--profile", "smoke", "--runs", str(tmp_path / "runs"),
                          "--out", str(out))  # fmt: skip
    assert code == 0 and f"open {out / 'index.html'}" in stdout
    assert (out / "sort.js").is_file() and (out / "view.css").is_file()


def test_view_of_an_empty_store_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path: Path) -> None:
    code, _, err = run(monkeypatch, capsys, "view", "--profile", "smoke", "--runs", str(tmp_path / "none"),
                       "--out", str(tmp_path / "site"))  # fmt: skip
    assert code == 2 and "no complete runs of profile smoke" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "site").exists()


def test_view_never_replaces_a_folder_that_is_not_a_site(monkeypatch, capsys, tmp_path: Path) -> None:
    write_store(tmp_path / "runs")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, _, err = run(monkeypatch, capsys, "view", "--profile", "smoke", "--runs", str(tmp_path / "runs"),
                       "--out", str(tmp_path / "mine"))  # fmt: skip
    assert code == 2 and "is not a site written by `harness view`" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
