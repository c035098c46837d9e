"""Progress display: plain lines off a terminal, rich bars on one, worker events through a queue."""

from __future__ import annotations

import io
import queue
import re

from harness.core import progress


def test_plain_lines_say_when_a_stage_starts_and_ends_with_its_wall_time_and_rate() -> None:
    lines: list[str] = []
    shown = progress.PlainReporter(lines.append)
    shown.start_stage("graph-nav seed0 sft", total=4)
    shown.advance_stage(1, tokens=100, value="loss 2.000")
    shown.advance_stage(4, tokens=500, value="loss 1.500")
    shown.end_stage()
    shown.say("[1/1] react on graph-nav seed 0: success 0.5")
    assert lines[0] == "graph-nav seed0 sft: started, 4 steps"
    assert re.fullmatch(r"graph-nav seed0 sft: done, 4/4 steps in \d+\.\d s \([\d,]+ tok/s, loss 1\.500\)", lines[1])
    assert lines[2] == "[1/1] react on graph-nav seed 0: success 0.5" and len(lines) == 3


def test_a_resumed_stage_says_where_it_resumes_and_workers_are_named() -> None:
    lines: list[str] = []
    shown = progress.PlainReporter(lines.append)
    shown.start_stage("kb-search seed1 fc-rl", total=20, done=10, worker="2")
    shown.advance_stage(worker="2")  # one more step
    assert shown.stages["2"].done == 11
    shown.end_stage(worker="2")
    assert lines[0] == "[worker 2] kb-search seed1 fc-rl: started, 20 steps, resuming at step 10"
    assert lines[1].startswith("[worker 2] kb-search seed1 fc-rl: done, 11/20 steps in ")


def test_tokens_per_second_counts_from_the_first_report() -> None:
    stage = progress.StageView("x", 10)
    assert stage.tokens_per_s() is None and stage.info() == ""
    stage.tokens_first, stage.tokens, stage.started = 1000, 3000, stage.started - 2.0
    assert 900 < stage.tokens_per_s() <= 1000


def test_quiet_and_silent_reporters_print_nothing(capsys) -> None:
    for shown in (progress.QuietReporter(), progress.Reporter()):
        shown.start_runs(3)
        shown.start_stage("a", 2)
        shown.advance_stage(1, 10, "loss 1.0")
        shown.end_stage()
        shown.finish_run()
        shown.say("a run line")
    assert capsys.readouterr().out == ""


def test_live_bars_show_runs_and_each_workers_stage_with_rate_and_loss() -> None:
    out = io.StringIO()
    shown = progress.LiveReporter(out)
    shown.console.force_terminal = True
    shown.start_runs(5)
    shown.finish_run()
    shown.finish_run()
    shown.start_stage("graph-nav seed0 wm-amt", total=8, worker="1")
    shown.advance_stage(3, tokens=64, value="loss 2.345", worker="1")
    shown.say("[2/5] react on graph-nav seed 0: success 0.5")
    shown.bars.refresh()
    shown.close()
    text = out.getvalue()
    assert "runs" in text and "2/5" in text
    assert "[worker 1] graph-nav seed0 wm-amt" in text and "3/8" in text and "loss 2.345" in text
    assert "[2/5] react on graph-nav seed 0" in text


def test_worker_events_reach_the_parent_reporter_through_a_queue() -> None:
    events: queue.Queue = queue.Queue()
    lines: list[str] = []
    parent = progress.PlainReporter(lines.append)
    drawing = progress.forward_events(events, parent)
    worker = progress.QueueReporter(events, "3")
    worker.start_stage("countdown seed0 sft", 2)
    worker.advance_stage(2, 40, "loss 0.9")
    worker.end_stage()
    events.put(None)
    drawing.join(timeout=5)
    assert not drawing.is_alive()
    assert lines[0] == "[worker 3] countdown seed0 sft: started, 2 steps"
    assert lines[1].startswith("[worker 3] countdown seed0 sft: done, 2/2 steps") and "loss 0.9" in lines[1]


def test_a_throttled_worker_merges_advances_and_sends_the_last_before_the_end() -> None:
    """interval 1 hour: the first advance goes at once, the next four merge into one sent at the end,
    with the absolute count (None counts one step), the latest tokens and the latest value."""
    events: queue.Queue = queue.Queue()
    worker = progress.QueueReporter(events, "2", interval=3600)
    worker.start_stage("kb-search seed0 fc-rl", 10)
    worker.advance_stage(1, 100, "reward 0.1")
    worker.advance_stage(2, 200, "reward 0.2")
    worker.advance_stage(None, None, "")
    worker.advance_stage(6, 600, "reward 0.6")
    worker.advance_stage()
    worker.end_stage()
    sent = [events.get_nowait() for _ in range(events.qsize())]
    assert [name for name, _ in sent] == ["start_stage", "advance_stage", "advance_stage", "end_stage"]
    assert sent[1][1] == {"done": 1, "tokens": 100, "value": "reward 0.1", "worker": "2"}
    assert sent[2][1] == {"done": 7, "tokens": 600, "value": "reward 0.6", "worker": "2"}
    worker.start_stage("kb-search seed0 eval", 3)  # a new stage starts from its own count
    worker.end_stage()
    assert [events.get_nowait()[0] for _ in range(events.qsize())] == ["start_stage", "end_stage"]


def test_the_first_advance_goes_at_once_on_a_machine_booted_moments_ago(monkeypatch) -> None:
    """time.monotonic() counts from boot: 2 s after it, an interval of an hour must not hold the first advance
    (it did, and the test above failed on a fresh machine, while it passed on one up for over an hour)."""
    monkeypatch.setattr(progress.time, "monotonic", lambda: 2.0)
    events: queue.Queue = queue.Queue()
    worker = progress.QueueReporter(events, "1", interval=3600)
    worker.start_stage("graph-nav seed0 sft", 5)
    worker.advance_stage(1, 10, "loss 2.0")
    worker.advance_stage(2, 20, "loss 1.5")
    sent = [events.get_nowait() for _ in range(events.qsize())]
    assert sent[1] == ("advance_stage", {"done": 1, "tokens": 10, "value": "loss 2.0", "worker": "1"})
    assert len(sent) == 2  # the second, 0 s later, waits for the end


def test_a_session_is_active_for_its_duration_only() -> None:
    before = progress.active()
    lines: list[str] = []
    with progress.session("plain", lines.append) as shown:
        assert progress.active() is shown and isinstance(shown, progress.PlainReporter)
    assert progress.active() is before
    with progress.session("quiet", lines.append) as shown:
        assert isinstance(shown, progress.QuietReporter)
    # Off a terminal, auto means plain lines.
    assert isinstance(progress.make_reporter("auto", lines.append, io.StringIO()), progress.PlainReporter)


def test_a_session_tells_launched_processes_its_mode_and_restores_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.delenv("RANK", raising=False)
    with progress.session("plain", [].append):
        assert progress.environ_mode() == "plain"
        # Process 0 of a launched stage prints plain lines; another process, and no session, nothing.
        assert isinstance(progress.launched_reporter(), progress.PlainReporter)
        monkeypatch.setenv("RANK", "1")
        assert type(progress.launched_reporter()) is progress.Reporter
        monkeypatch.delenv("RANK")
        with progress.session("quiet", [].append):
            assert progress.environ_mode() == "quiet"
            assert type(progress.launched_reporter()) is progress.Reporter
        assert progress.environ_mode() == "plain"
    assert progress.environ_mode() is None
    assert type(progress.launched_reporter()) is progress.Reporter


def test_a_live_display_steps_aside_while_another_process_writes() -> None:
    shown = progress.LiveReporter(io.StringIO())
    assert shown.bars.live.is_started
    with shown.handover():
        assert not shown.bars.live.is_started
    assert shown.bars.live.is_started
    shown.close()
    with progress.PlainReporter([].append).handover():  # nothing to pause off a terminal
        pass
