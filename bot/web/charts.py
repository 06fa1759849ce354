"""Charts drawn on the server as inline SVG: no script, no CDN, readable without JavaScript."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from bot.web.dashboard import count

WIDTH = 640
COLOURS = {"consented": "#2e7d4f", "declined": "#b7791f", "opted out": "#b83232", "expired": "#8a8f98"}
DEFAULT_COLOUR = "#3867b5"


def funnel(stages: list[tuple[str, int]], *, title: str = "Funnel") -> Markup:
    """Draw one horizontal bar per stage, its value written after it."""
    row, bar, label_width, value_room = 30, 20, 110, 110
    top = max((value for _, value in stages), default=0) or 1
    span = WIDTH - label_width - value_room
    height = row * len(stages) + 6
    parts = [_open(WIDTH, height, f"{title}: " + ", ".join(f"{name} {count(value)}" for name, value in stages),
                   "chart funnel")]
    for index, (name, value) in enumerate(stages):
        y = 3 + index * row
        length = round(span * value / top) if value else 0
        colour = COLOURS.get(name, DEFAULT_COLOUR)
        parts.append(
            f'<g class="stage" data-stage="{escape(name)}" data-value="{value}">'
            f'<text class="label" x="{label_width - 8}" y="{y + bar - 5}" text-anchor="end">{escape(name)}</text>'
            f'<rect x="{label_width}" y="{y}" width="{max(length, 1)}" height="{bar}" rx="3" fill="{colour}"/>'
            f'<text class="value" x="{label_width + length + 6}" y="{y + bar - 5}">{count(value)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def hourly(series: list[tuple[int, int]], tz: ZoneInfo, *, title: str = "Answers per hour") -> Markup:
    """Draw a column per hour (start epoch, count), labelling every sixth hour in local time."""
    left, bottom, top_pad, height = 44, 22, 14, 170
    plot = height - bottom - top_pad
    top = max((value for _, value in series), default=0)
    step = (WIDTH - left - 4) / max(1, len(series))
    total = sum(value for _, value in series)
    parts = [_open(WIDTH, height, f"{title}: {count(total)} in the last {len(series)} hours", "chart hourly")]
    parts.append(f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{WIDTH - 4}" y2="{height - bottom}"/>')
    if top:  # an empty chart has no scale: its top labelled 0 like its bottom would say nothing
        parts.append(f'<text class="tick" x="{left - 6}" y="{top_pad + 4}" text-anchor="end">{count(top)}</text>')
    parts.append(f'<text class="tick" x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>')
    for index, (start, value) in enumerate(series):
        x = left + index * step
        local = dt.datetime.fromtimestamp(start, tz)
        if value:
            bar = max(1.0, plot * value / top)
            parts.append(f'<rect class="hour" data-hour="{local:%Y-%m-%d %H:00}" data-value="{value}" '
                         f'x="{x + 1:.1f}" y="{height - bottom - bar:.1f}" width="{max(1.0, step - 2):.1f}" '
                         f'height="{bar:.1f}" fill="{DEFAULT_COLOUR}"><title>{local:%a %d %b %H:00}: '
                         f'{count(value)}</title></rect>')
        if local.hour % 6 == 0:
            tick = local.strftime("%d/%m") if local.hour == 0 else local.strftime("%Hh")
            parts.append(f'<text class="tick" x="{x:.1f}" y="{height - 6}">{tick}</text>')
    if not total:
        parts.append(f'<text class="empty" x="{WIDTH / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">'
                     f'No answers in the last {len(series)} hours</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(width: int, height: int, label: str, css: str) -> str:
    return (f'<svg class="{css}" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>')
