"""The benchmark harness's verdicts (bench/run.py), on made-up rounds.

The docs and the issue notes quote these verdicts, so the rules behind them
are pinned here: a peak RSS is compared only between rounds in which both
servers held every connection, and round-by-round ratios pair each round's
two runs. No benchmark runs here: the rounds are data.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

_RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.fixture(scope="module")
def run() -> Any:
    spec = importlib.util.spec_from_file_location("bench_run", _RUN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _idle_round(round_: int, succeeded: int, hwm_kb: int, conns: int = 10000) -> dict[str, Any]:
    return {
        "round": round_,
        "mode": "idle",
        "ops_per_sec": 20000.0,
        "errors": 0,
        "conns": conns,
        "connected": succeeded,
        "succeeded": succeeded,
        "failed": conns - succeeded,
        "server_rss_before_kb": 13000,
        "server_rss_hold_kb": hwm_kb - 40000,
        "server_hwm_kb": hwm_kb,
        "connect_seconds": 3.0,
        "server_cpu_pct": 99.0,
        "loadgen_cpu_pct": 30.0,
        "core_busy_pct": {"0": 99.0, "1": 30.0},
    }


def _summarize(
    run: Any, scenario: str, runs: dict[str, list[dict[str, Any]]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pair's goal and the per-contender summaries."""
    pairs = [("sync.S", "stdlib.S", None if scenario == "idle" else 1.0)]
    _, out = run.summarize(scenario, runs, pairs)
    (goal,) = out["goals"]
    return dict(goal), dict(out["contenders"])


def _goal(run: Any, scenario: str, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return _summarize(run, scenario, runs)[0]


def test_idle_peaks_compared_only_where_both_held_every_connection(run: Any) -> None:
    # The baseline failed to hold all connections in three rounds, with
    # lower peaks there (it held fewer). Those rounds must not count.
    runs = {
        "stdlib.S": [
            _idle_round(1, 9256, 270000),
            _idle_round(2, 10000, 293600),
            _idle_round(3, 9690, 284000),
            _idle_round(4, 10000, 293700),
            _idle_round(5, 8236, 283000),
        ],
        "sync.S": [_idle_round(r, 10000, 284500 + r) for r in range(1, 6)],
    }
    goal, contenders = _summarize(run, "idle", runs)
    assert goal["ratio"] == pytest.approx(284503 / 293650)
    assert goal["held_ratio"] == pytest.approx((284503 - 40000) / (293650 - 40000))
    assert goal["met"] is True
    assert "all of them in 5 and 2 of 5 and 5 rounds" in goal["text"]
    # The median over all five rounds (the rule before) is a failed round's
    # 284000, which would have put the contender above the baseline.
    assert contenders["stdlib.S"]["median_hwm_kb"] == 284000
    assert contenders["stdlib.S"]["median_hwm_all_served_kb"] == 293650


def test_idle_not_comparable_when_the_baseline_never_held_them_all(run: Any) -> None:
    runs = {
        "stdlib.S": [_idle_round(r, 9000, 260000) for r in range(1, 4)],
        "sync.S": [_idle_round(r, 10000, 284000) for r in range(1, 4)],
    }
    goal = _goal(run, "idle", runs)
    assert goal["ratio"] is None
    assert goal["met"] is None
    assert "not comparable" in goal["text"]


def test_idle_not_met_when_the_contender_drops_a_connection(run: Any) -> None:
    runs = {
        "stdlib.S": [_idle_round(r, 10000, 293000) for r in range(1, 4)],
        "sync.S": [_idle_round(1, 9999, 250000), *(_idle_round(r, 10000, 284000) for r in (2, 3))],
    }
    goal = _goal(run, "idle", runs)
    assert goal["served"] is False
    assert goal["met"] is False
    assert "NOT met" in goal["text"]


def _ops_round(round_: int, ops: float) -> dict[str, Any]:
    return {
        "round": round_,
        "ops_per_sec": ops,
        "errors": 0,
        "server_cpu_pct": 99.0,
        "loadgen_cpu_pct": 50.0,
        "core_busy_pct": {"0": 99.0, "1": 50.0},
    }


def test_round_by_round_ratios_pair_each_rounds_two_runs(run: Any) -> None:
    # The machine drifts: round 2 is slow for both. Paired, the contender is
    # ahead in every round; the ratio of the medians says less.
    base = {1: 100.0, 2: 50.0, 3: 90.0}
    mine = {1: 110.0, 2: 60.0, 3: 95.0}
    runs = {
        "stdlib.S": [_ops_round(r, v) for r, v in base.items()],
        # listed out of order: pairing is by round, not by position
        "sync.S": [_ops_round(r, mine[r]) for r in (3, 1, 2)],
    }
    goal = _goal(run, "persistent", runs)
    assert goal["ratio"] == pytest.approx(95.0 / 90.0)
    assert goal["paired_median"] == pytest.approx(1.1)
    assert goal["paired_min"] == pytest.approx(95.0 / 90.0)
    assert goal["paired_max"] == pytest.approx(1.2)
    assert goal["paired_n"] == 3
    assert goal["paired_wins"] == 3
    assert "round by round: median 1.10x" in goal["text"]


def test_round_by_round_ratios_skip_rounds_without_a_baseline(run: Any) -> None:
    ratios = run.paired_ratios(
        [_ops_round(1, 100.0), _ops_round(2, 80.0)],
        [_ops_round(1, 125.0)],
    )
    assert ratios["paired_n"] == 1
    assert ratios["paired_median"] == pytest.approx(0.8)
    assert ratios["paired_wins"] == 0
    assert run.paired_ratios([_ops_round(1, 1.0)], []) == {}


def test_an_aa_control_is_reported_beside_its_pair_and_is_not_a_goal(run: Any) -> None:
    # The control is the baseline's own server run again: its ratio says how
    # far apart two identical servers measured, and nothing is checked on it.
    base = {1: 100.0, 2: 80.0, 3: 90.0}
    again = {1: 90.0, 2: 96.0, 3: 99.0}
    mine = {1: 95.0, 2: 84.0, 3: 99.0}
    runs = {
        "stdlib.S": [_ops_round(r, v) for r, v in base.items()],
        "control.S": [_ops_round(r, v) for r, v in again.items()],
        "sync.S": [_ops_round(r, v) for r, v in mine.items()],
    }
    pairs = [("sync.S", "stdlib.S", 1.0)]
    controls = [("control.S", "stdlib.S")]
    lines, out = run.summarize("persistent", runs, pairs, "loadgen", controls)
    assert [g["contender"] for g in out["goals"]] == ["sync.S"]
    assert "control.S" not in out["ratios"]
    (control,) = out["controls"]
    assert control["ratio"] == pytest.approx(96.0 / 90.0)
    assert control["paired_median"] == pytest.approx(1.1)
    assert control["paired_min"] == pytest.approx(0.9)
    assert control["paired_max"] == pytest.approx(1.2)
    assert "met" not in control
    assert any(line.startswith("  control.S / stdlib.S: A/A control") for line in lines)

    verdict = run.suite_verdict(
        ["persistent"],
        {"persistent": pairs},
        {"persistent": out},
        {"persistent": controls},
    )
    assert len(verdict) == 2
    assert "goal >= 1.0x" in verdict[0]
    assert "A/A control (the same server twice): 1.07x" in verdict[1]
    assert "median 1.10x, 0.90x..1.20x over 3 rounds" in verdict[1]
    assert "not a goal" in verdict[1]
    # Left out by --only: the pair's verdict alone.
    _, without = run.summarize("persistent", runs, pairs, "loadgen")
    assert "controls" not in without
    assert (
        run.suite_verdict(
            ["persistent"], {"persistent": pairs}, {"persistent": without}, {"persistent": controls}
        )
        == verdict[:1]
    )
