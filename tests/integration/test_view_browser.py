"""`harness view` on a real smoke store, read in headless Chromium (Debian's chromium, driven by Playwright).

The store: foresight and sft-mimic trained and evaluated on graph-nav (smoke profile, seed 0), with
one model output rewritten to hold a <script> element. Checks: the index lists every run and sorts;
a run page shows every episode and, for one episode, the hit/miss marks of its foresight blocks as
worked out from its record; the filters hide what they should; the <script> is shown as text and
never runs; no page logs a console error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.config import load_profile
from harness.evaluation.evaluate import evaluate_run
from tests.browser import REQUIRE, browser_required, chromium_or_reason
from tests.cli_processes import harness

pytestmark = pytest.mark.heavy
METHODS = ("foresight", "sft-mimic")
SCRIPT = "<script>window.__pwned = 1</script>"


@pytest.fixture(scope="module")
def browser():
    """Yields a headless Chromium page factory; without Chromium, fails under CI (a skip there would pass
    `make test-browser` with no test run) and skips with the reason elsewhere."""
    path, reason = chromium_or_reason()
    if path is None:
        if browser_required():
            pytest.fail(f"browser tests need Chromium ({REQUIRE}=1 or CI is set): {reason}")
        pytest.skip(f"browser tests need Chromium: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=path, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, Path]:
    """Returns (site folder, runs folder) of a two-run smoke store rendered by `harness view`."""
    tmp = tmp_path_factory.mktemp("view")
    runs, cache = tmp / "runs", tmp / "cache"
    for method in METHODS:
        evaluate_run(method, "graph-nav", load_profile("smoke"), 0, cache, runs)
    episodes = runs / "smoke/graph-nav/foresight/seed0/episodes.jsonl"
    records = [json.loads(line) for line in episodes.read_text().splitlines()]
    records[0]["turns"][0]["output"] = SCRIPT + " " + records[0]["turns"][0]["output"]
    # Smoke models write no parsable foresight block, so one hand-made block goes into episode 1:
    # predicted at n1, at n3 against actual at n1, at n2 is a hit, then a miss.
    records[1]["turns"][0].update(
        parsed={"thought": "go", "plan": ["e1", "e2"], "rollout": ["at n1", "at n3"], "p": 0.7},
        actual=["at n1", "at n2"], q_star=1.0, q_ref=0.8, error=None,
    )  # fmt: skip
    episodes.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    out = tmp / "site"
    result = harness(["view", "--profile", "smoke", "--runs", str(runs), "--out", str(out)], tmp / "logs")
    assert result.code == 0, result.err
    return out, runs


def _open(browser, url: str):
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, errors


def test_the_index_lists_every_run_and_sorts_by_a_column(browser, site) -> None:
    out, runs = site
    page, errors = _open(browser, (out / "index.html").as_uri())
    rows = page.locator("table#runs tbody tr")
    assert rows.count() == len(list(runs.glob("smoke/*/*/seed*/metrics.json"))) == 2
    assert sorted(rows.nth(i).locator("td").nth(1).inner_text() for i in range(2)) == sorted(METHODS)
    success = [json.loads((runs / f"smoke/graph-nav/{m}/seed0/metrics.json").read_text())["success"] for m in METHODS]
    header = page.locator("table#runs th", has_text="success")
    for expected in (sorted(success), sorted(success, reverse=True)):
        header.click()
        shown = [float(rows.nth(i).locator("td").nth(3).get_attribute("data-value")) for i in range(2)]
        assert shown == expected
    with page.expect_navigation():
        page.locator("table#runs a", has_text="foresight").click()
    assert page.url.endswith("runs/graph-nav/foresight/seed0.html")
    assert errors == []


def test_a_run_page_shows_every_episode_its_marks_and_the_script_as_text(browser, site) -> None:
    out, runs = site
    records = [json.loads(line) for line in (runs / "smoke/graph-nav/foresight/seed0/episodes.jsonl").open()]
    page, errors = _open(browser, (out / "runs/graph-nav/foresight/seed0.html").as_uri())
    assert page.locator("article.episode").count() == len(records) == 12
    # One episode worked out from its record: a predicted observation is a hit iff it equals the actual one.
    record = next(r for r in records if any(t["parsed"] and "rollout" in t["parsed"] for t in r["turns"]))
    expected = []
    for turn in record["turns"]:
        if turn["parsed"] and "rollout" in turn["parsed"]:
            for j, predicted in enumerate(turn["parsed"]["rollout"]):
                hit = j < len(turn["actual"]) and predicted == turn["actual"][j]
                expected.append("✓ hit" if hit else "✗ miss")
    assert record["episode"] == 1 and expected[:2] == ["✓ hit", "✗ miss"]  # worked out by hand above
    marks = page.locator(f"#episode-{record['episode']} table.block td.mark")
    assert marks.all_inner_texts() == expected
    # The <script> of a model output is shown as text and never ran.
    assert SCRIPT in page.locator("#episode-0 code.model-output").first.inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # The filters (CSS only): failed hides the solved episodes.
    solved = sum(r["success"] for r in records)
    page.locator("label[for=outcome-failed]").click()
    assert page.locator("article.episode:visible").count() == len(records) - solved
    page.locator("label[for=outcome-solved]").click()
    assert page.locator("article.episode:visible").count() == solved
    assert errors == []


def test_the_compare_page_pairs_the_same_episodes_without_errors(browser, site) -> None:
    out, _ = site
    page, errors = _open(browser, (out / "compare/foresight-vs-sft-mimic.html").as_uri())
    assert page.locator("div.pair").count() == 12
    first = page.locator("div.pair").first.locator("article.episode")
    assert first.count() == 2 and first.nth(0).get_attribute("data-episode") == first.nth(1).get_attribute(
        "data-episode"
    )
    assert errors == []
