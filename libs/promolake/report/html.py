"""A self-contained HTML page from sections of text, tables and PNG images (embedded as base64), so the
report is one file a person can open or mail. Pure: no Spark, no files."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Sequence, Union

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #2b6cb0; padding-bottom: .3em; }
h2 { margin-top: 2em; color: #2b6cb0; }
table { border-collapse: collapse; margin: .8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th { background: #edf2f7; }
td.text, th.text { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: .5em 0; }
p.note { color: #555; font-size: 0.9em; }
"""


@dataclass(frozen=True)
class Table:
    rows: Sequence[dict]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    png: bytes
    alt: str


@dataclass(frozen=True)
class Note:
    text: str


Block = Union[str, Table, Image, Note]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


def _cell(value) -> tuple[str, bool]:
    """(text, is_number) of one table cell."""
    if value is None or (isinstance(value, float) and value != value):
        return "", True
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        return (f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"), True
    return str(value), False


def table_html(t: Table) -> str:
    if not t.rows:
        return f"<p class='note'>{html.escape(t.caption or 'no rows')}: no rows</p>"
    cols = list(dict.fromkeys(k for r in t.rows for k in r))
    first = [_cell(t.rows[0].get(c)) for c in cols]
    head = "".join(f"<th class='{'' if num else 'text'}'>{html.escape(str(c))}</th>" for c, (_, num) in zip(cols, first))
    body = []
    for r in t.rows:
        cells = [_cell(r.get(c)) for c in cols]
        body.append("<tr>" + "".join(f"<td class='{'' if num else 'text'}'>{html.escape(text)}</td>"
                                     for text, num in cells) + "</tr>")
    caption = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}<tr>{head}</tr>{''.join(body)}</table>"


def block_html(b: Block) -> str:
    if isinstance(b, Table):
        return table_html(b)
    if isinstance(b, Image):
        data = base64.b64encode(b.png).decode("ascii")
        return f"<img alt='{html.escape(b.alt, quote=True)}' src='data:image/png;base64,{data}'/>"
    if isinstance(b, Note):
        return f"<p class='note'>{html.escape(b.text)}</p>"
    return f"<p>{html.escape(str(b))}</p>"


def render(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole page: a title, a table of contents and the sections in order."""
    toc = "".join(f"<li><a href='#s{i}'>{html.escape(s.title)}</a></li>" for i, s in enumerate(sections))
    parts = [f"<h2 id='s{i}'>{html.escape(s.title)}</h2>" + "".join(block_html(b) for b in s.blocks)
             for i, s in enumerate(sections)]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='note'>{html.escape(subtitle)}</p><ul>{toc}</ul>{''.join(parts)}</body></html>")
