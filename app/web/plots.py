"""Server-rendered SVG plots for the leaderboard (no JS chart library). Labels are escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import numpy as np


def _text(x: float, y: float, s: str, **attrs: Any) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" {extra}>{escape(s)}</text>'


def intervals_svg(rows: Sequence[dict[str, Any]], width: int = 720) -> str:
    """Each model's score as a dot with its 95% interval, best at the top."""
    if not rows:
        return ""
    row_h, left, right, top = 22, 220, 30, 30
    height = top + row_h * len(rows) + 30
    lo = min(r["ci_lower"] for r in rows)
    hi = max(r["ci_upper"] for r in rows)
    pad = max(1.0, (hi - lo) * 0.05)
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot plot-intervals" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="Scores with 95% confidence intervals">',
        _text(left, 18, "Arena score with 95% interval", font_size=13, font_weight="bold"),
    ]
    for tick in np.linspace(lo, hi, 5):
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="{top - 6}" x2="{x(tick):.1f}" y2="{height - 26}" stroke="#e3e3e8"/>'
        )
        parts.append(_text(x(tick), height - 10, f"{tick:.0f}", font_size=11, text_anchor="middle", fill="#666"))
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        parts.append(_text(left - 8, y + 4, r.get("name") or r["model"], font_size=12, text_anchor="end"))
        parts.append(
            f'<line class="ci" x1="{x(r["ci_lower"]):.1f}" y1="{y:.1f}" x2="{x(r["ci_upper"]):.1f}" '
            f'y2="{y:.1f}" stroke="#3657d6" stroke-width="2"/>'
        )
        parts.append(
            f'<circle class="score" data-model="{escape(r["model"])}" cx="{x(r["rating"]):.1f}" '
            f'cy="{y:.1f}" r="4" fill="#3657d6"><title>{escape(r["model"])}: {r["rating"]:.1f} '
            f"(+{r['ci_plus']:.1f}/-{r['ci_minus']:.1f})</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def heatmap_svg(labels: Sequence[str], matrix: np.ndarray, title: str, *, percent: bool, size: int = 560) -> str:
    """A square matrix as coloured cells: row model against column model."""
    n = len(labels)
    if n == 0:
        return ""
    longest = max(len(label) for label in labels)
    left, top = min(190, 24 + 6.5 * longest), min(150, 30 + 5.5 * longest)
    cell = min(44.0, max(14.0, (size - left) / n))
    width = left + cell * n + 10
    height = top + cell * n + 10
    finite = matrix[np.isfinite(matrix)]
    vmax = float(finite.max()) if finite.size and not percent else 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot plot-heatmap" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" aria-label="{escape(title)}">',
        _text(8, 18, title, font_size=13, font_weight="bold"),
    ]
    for j, name in enumerate(labels):
        cx = left + cell * j + cell / 2
        parts.append(_text(cx, top - 6, name, font_size=10, transform=f"rotate(-60 {cx:.1f} {top - 6})"))
    for i, name in enumerate(labels):
        y = top + cell * i
        parts.append(_text(left - 6, y + cell / 2 + 4, name, font_size=10, text_anchor="end"))
        for j in range(n):
            v = float(matrix[i, j])
            if not np.isfinite(v) or i == j:
                fill, label = "#f2f2f5", ""
            else:
                t = v / vmax if vmax else 0.0
                if percent:  # red below 50%, blue above
                    red = int(255 - max(0, t - 0.5) * 2 * 190)
                    green = int(255 - abs(t - 0.5) * 2 * 160)
                    blue = int(255 - max(0, 0.5 - t) * 2 * 190)
                    fill = f"rgb({red},{green},{blue})"
                    label = f"{v * 100:.0f}"
                else:
                    fill = f"rgb({int(255 - t * 200)},{int(255 - t * 150)},255)"
                    label = f"{v:.0f}"
            parts.append(
                f'<rect class="cell" x="{left + cell * j:.1f}" y="{y:.1f}" width="{cell:.1f}" '
                f'height="{cell:.1f}" fill="{fill}" stroke="#fff">'
                f"<title>{escape(name)} vs {escape(labels[j])}: {label}</title></rect>"
            )
            if label and cell >= 22:
                parts.append(
                    _text(left + cell * j + cell / 2, y + cell / 2 + 4, label, font_size=9, text_anchor="middle")
                )
    parts.append("</svg>")
    return "".join(parts)
