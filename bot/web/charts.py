"""Charts drawn on the server as inline SVG: no script, no CDN, readable without JavaScript."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask_babel import gettext
from markupsafe import Markup, escape

from bot.web import i18n, names
from bot.web.dashboard import count

MIN_BAR = 0.2  # percent: a stage at 0 still shows where its bar starts
GAP = 0.15  # of each hour's width, left between columns
LAST_TICK = 92  # percent: a tick starting further right would run past the chart's edge on a phone
COLOURS = {"consented": "#2e7d4f", "declined": "#b7791f", "opted out": "#b83232", "expired": "#8a8f98"}
DEFAULT_COLOUR = "#3867b5"


def funnel(stages: list[tuple[str, int]], *, title: str = "") -> Markup:
    """Draw one horizontal bar per stage, its name above it on the left and its value on the right."""
    title = title or gettext("Funnel")
    row, bar, text = 40, 14, 14  # pixels: a row holds a line of text, then the bar under it
    top = max((value for _, value in stages), default=0) or 1
    height = row * len(stages)
    label = gettext("%(title)s: %(stages)s", title=title,
                    stages=", ".join(f"{names.stage(name)} {count(value)}" for name, value in stages))
    parts = [_open(height, label, "chart funnel")]
    for index, (name, value) in enumerate(stages):
        y = index * row
        colour = COLOURS.get(name, DEFAULT_COLOUR)
        parts.append(
            f'<g class="stage" data-stage="{escape(name)}" data-value="{value}">'
            f'<text class="label" x="0" y="{y + text}">{escape(names.stage(name))}</text>'
            f'<text class="value" x="100%" y="{y + text}" text-anchor="end">{count(value)}</text>'
            f'<rect x="0" y="{y + text + 5}" width="{max(100 * value / top, MIN_BAR):.2f}%" height="{bar}" rx="3" '
            f'fill="{colour}"/></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def hourly(series: list[tuple[int, int]], tz: ZoneInfo, *, title: str = "") -> Markup:
    """Draw a column per hour (start epoch, count), labelling every sixth hour in local time.

    Columns are placed in percents of the plot, which the stylesheet starts 44 pixels right of the
    chart's left edge (accord.css): the scale is written in that room, left of x=0.
    """
    title = title or gettext("Answers per hour")
    bottom, top_pad, height = 22, 14, 170
    plot = height - bottom - top_pad
    top = max((value for _, value in series), default=0)
    step = 100 / max(1, len(series))  # percent of the plot's width
    total = sum(value for _, value in series)
    label = gettext("%(title)s: %(total)s in the last %(hours)s hours", title=title, total=count(total),
                    hours=len(series))
    parts = [_open(height, label, "chart hourly")]
    parts.append(f'<line class="axis" x1="0" y1="{height - bottom}" x2="100%" y2="{height - bottom}"/>')
    if top:  # an empty chart has no scale: its top labelled 0 like its bottom would say nothing
        parts.append(f'<text class="tick" x="-6" y="{top_pad + 4}" text-anchor="end">{count(top)}</text>')
    parts.append(f'<text class="tick" x="-6" y="{height - bottom}" text-anchor="end">0</text>')
    for index, (start, value) in enumerate(series):
        x = index * step
        local = dt.datetime.fromtimestamp(start, tz)
        if value:
            bar = max(1.0, plot * value / top)
            parts.append(f'<rect class="hour" data-hour="{local:%Y-%m-%d %H:00}" data-value="{value}" '
                         f'x="{x + step * GAP / 2:.2f}%" y="{height - bottom - bar:.1f}" '
                         f'width="{step * (1 - GAP):.2f}%" height="{bar:.1f}" fill="{DEFAULT_COLOUR}">'
                         f'<title>{i18n.short_moment(local, seconds=False)}: {count(value)}</title></rect>')
        if local.hour % 6 == 0:
            tick = local.strftime("%d/%m") if local.hour == 0 else local.strftime("%Hh")
            # A tick by the right edge ends at its hour, so that it stays inside the chart.
            anchor = ' text-anchor="end"' if x > LAST_TICK else ""
            minor = " minor" if local.hour % 12 else ""  # 06h and 18h: a phone's stylesheet leaves them out
            parts.append(f'<text class="tick{minor}" x="{x:.2f}%" y="{height - 6}"{anchor}>{tick}</text>')
    if not total:
        empty = gettext("No answers in the last %(hours)s hours", hours=len(series))  # not in an f-string: unextracted
        parts.append(f'<text class="empty" x="50%" y="{height / 2:.0f}" text-anchor="middle">'
                     f'{escape(empty)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(height: int, label: str, css: str) -> str:
    """Open a chart as wide as its container and `height` pixels high.

    No viewBox: a viewBox would shrink the text with the chart (a 640-unit chart on a 360-px phone
    writes 13-px labels 6 px high); here positions across are percents and text keeps its size.
    """
    return (f'<svg class="{css}" role="img" aria-label="{escape(label)}" width="100%" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>')
