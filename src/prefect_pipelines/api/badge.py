"""A pipeline's status badge: a Shields-style ("flat") SVG, `build | success`.

Drawn here from Shields' flat template: the one maintained badge library (pybadges)
reads its font widths through pkg_resources, which current setuptools no longer ships.
Text widths are estimates of Verdana at 11px; `textLength` makes every viewer draw the
text at exactly that width, so the badge looks the same everywhere.
"""

from __future__ import annotations

from html import escape

COLORS = {"success": "#4c1", "failed": "#e05d44", "aborted": "#9f9f9f", "skipped": "#9f9f9f",
          "unknown": "#9f9f9f"}
# Advance widths of Verdana 11px, in pixels (a mean width for anything else).
_WIDTHS = {**dict.fromkeys("abdeghnopqu", 6.9), **dict.fromkeys("ckvxyz", 6.2),
           "f": 3.9, "i": 3.0, "j": 3.8, "l": 3.0, "m": 10.7, "r": 4.7, "s": 5.8, "t": 4.3,
           "w": 8.9, " ": 3.9, "-": 4.9, ".": 3.9, "/": 4.9, "|": 4.9}
_MEAN = 7.0


def text_width(text: str) -> float:
    return sum(_WIDTHS.get(ch, _MEAN) for ch in text)


def badge_svg(label: str, message: str) -> str:
    """The SVG of a badge `label | message`, colored for a state (grey for any other)."""
    color = COLORS.get(message, COLORS["unknown"])
    label_text, message_text = round(text_width(label) * 10), round(text_width(message) * 10)
    left, right = label_text / 10 + 10, message_text / 10 + 10
    width = left + right
    title = escape(f"{label}: {message}")
    label, message = escape(label), escape(message)

    def text(x: float, value: str, length: int) -> str:
        return (f'<text aria-hidden="true" x="{x * 10:g}" y="150" fill="#010101" fill-opacity=".3" '
                f'transform="scale(.1)" textLength="{length}">{value}</text>'
                f'<text x="{x * 10:g}" y="140" transform="scale(.1)" fill="#fff" '
                f'textLength="{length}">{value}</text>')

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="20" role="img" '
        f'aria-label="{title}"><title>{title}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width:g}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left:g}" height="20" fill="#555"/>'
        f'<rect x="{left:g}" width="{right:g}" height="20" fill="{color}"/>'
        f'<rect width="{width:g}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'text-rendering="geometricPrecision" font-size="110">'
        f'{text(left / 2, label, label_text)}{text(left + right / 2, message, message_text)}'
        '</g></svg>')
