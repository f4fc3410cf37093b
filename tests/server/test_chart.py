"""The timeline chart's geometry (pure): one line per collection, one dot per snapshot, marks inside
the snapshots' span only, a y axis that ends on a round number."""

from __future__ import annotations

from guardian.server.console.chart import build_chart, nice_top


def point(snapshot: str, time: str, **counts: int) -> dict:
    return {"id": snapshot, "time": time, "counts": counts}


def test_lines_dots_and_marks():
    points = [point("a", "2026-01-01T00:00:00Z", memories=10, checkpoints=2),
              point("b", "2026-01-01T01:00:00Z", memories=14),
              point("c", "2026-01-01T02:00:00Z", memories=12, checkpoints=3)]
    marks = [{"time": "2026-01-01T01:30:00Z", "kind": "repair", "text": "x"},
             {"time": "2026-01-02T00:00:00Z", "kind": "restore", "text": "after the last snapshot"}]
    chart = build_chart(points, marks, width=1000, height=300)
    assert [(line.name, line.last) for line in chart.lines] == [("checkpoints", 3), ("memories", 12)]
    xs = [dot.x for dot in chart.dots]
    assert xs[0] == chart.left and xs[-1] == chart.left + chart.plot_width and xs == sorted(xs)
    memories = [tuple(map(float, p.split(","))) for p in chart.lines[1].points.split()]
    assert memories[1][1] < memories[2][1] < memories[0][1]          # 14 drawn highest, 10 lowest
    checkpoints = [float(p.split(",")[1]) for p in chart.lines[0].points.split()]
    assert checkpoints[1] == chart.top + chart.plot_height           # absent from "b": drawn at 0
    assert [(m.kind, m.x) for m in chart.marks] == [("repair", (xs[1] + xs[2]) / 2)]
    assert chart.y_ticks[-1] == (chart.top, 20) and chart.y_ticks[0][1] == 0
    assert [anchor for _, _, anchor in chart.x_ticks] == ["start", "middle", "middle", "middle", "end"]


def test_one_snapshot_and_none():
    single = build_chart([point("a", "2026-01-01T00:00:00Z", memories=3)], [])
    assert len(single.dots) == 1 and single.dots[0].x == single.left + single.plot_width / 2
    assert single.y_ticks[-1][1] == 5                                # never an axis of 0..3 in fifths
    assert build_chart([], []).empty


def test_round_axis_tops():
    assert [nice_top(n) for n in (1, 3, 5, 7, 12, 50, 51, 99_999)] == [1, 5, 5, 10, 20, 50, 100, 100_000]
