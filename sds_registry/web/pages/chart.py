"""The SSP activity chart: decisions per minute, stacked by kind of outcome, as an SVG drawn on the server.

Pure: counts in, markup out (every text escaped). Each bar has a <title> (a tooltip, and what a screen reader
reads); the page also shows the same figures as a table.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

#: A colour per kind of outcome (services.activity.OUTCOME_KINDS), readable on white.
COLOURS = {
    "allowed": "#2e7d32", "bad request": "#6d4c41", "unknown interaction": "#8e24aa", "method": "#5e35b1",
    "sender not accredited": "#c62828", "certificate": "#ad1457", "receiver has no endpoint": "#ef6c00",
    "target URL": "#f9a825", "no data-sharing agreement": "#1565c0", "audit JWT": "#00838f",
    "provider unreachable": "#455a64", "other": "#757575",
}
WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 40, 30, 10


def _nice_top(value: int) -> int:
    """The y axis' top: 1, 2 or 5 times a power of ten, at least ``value``."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if top * step >= value:
                return top * step
        top *= 10


def per_minute_svg(start: datetime, counts: dict[str, list[int]], minutes: int) -> str:
    """Stacked bars, one per minute from ``start``; ``counts`` maps kind -> one count per minute."""
    totals = [sum(values[i] for values in counts.values()) for i in range(minutes)]
    top = _nice_top(max(totals, default=0) or 1)
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    bar_w = plot_w / minutes
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart" '
        f'aria-labelledby="chart-title"><title id="chart-title">SSP decisions per minute by outcome, '
        f'{escape(start.strftime("%H:%M"))} to {escape((start + timedelta(minutes=minutes)).strftime("%H:%M"))} '
        f'UTC: {sum(totals)} in all</title>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 10}" y2="{TOP + plot_h}" class="axis"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" class="tick">{top}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end" class="tick">0</text>',
    ]
    for index in range(minutes):
        at = start + timedelta(minutes=index)
        x = LEFT + index * bar_w
        y = float(TOP + plot_h)
        for kind, values in counts.items():
            count = values[index]
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            parts.append(
                f'<rect x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(kind, COLOURS["other"])}"><title>{escape(at.strftime("%H:%M"))} '
                f'{escape(kind)}: {count}</title></rect>')
        if index % 10 == 0:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 10}" class="tick">{escape(at.strftime("%H:%M"))}</text>')
    parts.append("</svg>")
    return "".join(parts)
