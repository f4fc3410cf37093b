"""The timeline chart's geometry: snapshots over time, one line of document counts per collection,
repairs, restores and incidents as marks. Pure (points in, shapes out); the template draws the SVG."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#65a30d", "#db2777")
MARK_COLOURS = {"repair": "#dc2626", "restore": "#2563eb", "damage": "#ea580c", "child": "#7c3aed"}


@dataclass
class Line:
    name: str
    colour: str
    points: str                  # the polyline's "x,y x,y ..."
    last: int                    # the newest count


@dataclass
class Dot:
    x: float
    y: float
    id: str
    label: str


@dataclass
class Mark:
    x: float
    kind: str
    colour: str
    text: str


@dataclass
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    lines: list[Line] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    y_ticks: list[tuple[float, int]] = field(default_factory=list)
    x_ticks: list[tuple[float, str, str]] = field(default_factory=list)   # x, label, text-anchor

    @property
    def empty(self) -> bool:
        return not self.dots


def parse(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def nice_top(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above ``value`` (an axis that ends on a round number)."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if step * top >= value:
                return step * top
        top *= 10


def build_chart(points: list[dict], marks: list[dict], width: int = 1120, height: int = 280) -> Chart:
    """``points``: {"id", "time", "counts": {collection: documents}} oldest first; ``marks``: {"time",
    "kind", "text"}. Marks outside the snapshots' span are left out."""
    left, top, right, bottom = 56, 12, 16, 28
    chart = Chart(width, height, left, top, width - left - right, height - top - bottom)
    if not points:
        return chart
    times = [parse(p["time"]) for p in points]
    start, end = times[0], times[-1]
    span = end - start or 1.0
    names = sorted({name for p in points for name in p["counts"]})
    highest = nice_top(max([5] + [n for p in points for n in p["counts"].values()]))

    def x(moment: float) -> float:
        if end == start:
            return left + chart.plot_width / 2
        return round(left + (moment - start) / span * chart.plot_width, 1)

    def y(count: int) -> float:
        return round(top + chart.plot_height - count / highest * chart.plot_height, 1)

    for n, name in enumerate(names):
        coords = " ".join(f"{x(t)},{y(p['counts'].get(name, 0))}" for t, p in zip(times, points))
        chart.lines.append(Line(name, PALETTE[n % len(PALETTE)], coords, points[-1]["counts"].get(name, 0)))
    for moment, point in zip(times, points):
        total = sum(point["counts"].values())
        chart.dots.append(Dot(x(moment), y(max(point["counts"].values(), default=0)), point["id"],
                              f"{point['id']}: {total} documents"))
    for mark in marks:
        moment = parse(mark["time"])
        if start - 1 <= moment <= end + 1 or (end == start and abs(moment - start) < 3600):
            kind = mark["kind"]
            chart.marks.append(Mark(x(moment), kind, MARK_COLOURS.get(kind, "#6b7280"), mark["text"]))
    chart.y_ticks = [(y(highest * i // 5), highest * i // 5) for i in range(6)]
    shape = "%H:%M:%S" if span < 3600 else "%m-%d %H:%M"
    ticks = [start + span * i / 4 for i in range(5)] if end > start else [start]
    chart.x_ticks = [(x(t), datetime.fromtimestamp(t).strftime(shape),
                      "start" if n == 0 and len(ticks) > 1 else "end" if n == len(ticks) - 1 and n else "middle")
                     for n, t in enumerate(ticks)]
    return chart
