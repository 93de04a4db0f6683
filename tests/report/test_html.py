"""The report's HTML page (escaping, tables, embedded images) and the budget/profit curve on a hand case."""
from __future__ import annotations

import base64

import pandas as pd

from promolake.report.demo import budget_curve
from promolake.report.html import Image, Note, Section, Table, render


def test_page_escapes_text_and_embeds_images():
    png = b"\x89PNG\r\n\x1a\nfake"
    page = render("Report <1>", "sub & title", [
        Section("Tables & <plots>", [Table([{"name": "<b>x</b>", "rows": 1234567, "share": 0.12345}], "caption"),
                                     Image(png, "a 'plot'"), Note("n < m"), "plain"])])
    assert "<title>Report &lt;1&gt;</title>" in page and "Tables &amp; &lt;plots&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "1,234,567" in page and "0.1235" in page
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page
    assert "n &lt; m" in page and "<p>plain</p>" in page
    assert page.count("<h2 id='s0'>") == 1 and "<a href='#s0'>" in page


def test_empty_table_says_so():
    assert "no rows" in render("r", "", [Section("s", [Table([], "assignments")])])


def test_budget_curve_by_hand():
    # user a: offer worth 5 for cost 2 or 8 for cost 6; user b: 3 for cost 1; a loss-making option is never taken
    options = pd.DataFrame({"user_id": ["a", "a", "b", "b"], "expected_cost": [2.0, 6.0, 1.0, 1.0],
                            "expected_incremental_profit": [5.0, 8.0, 3.0, -1.0]})
    curve = budget_curve(options, budget=3.5, max_per_user=1, steps=3)      # budgets 0, 3.5, 7
    assert list(curve.budget) == [0.0, 3.5, 7.0]
    assert list(curve.expected_profit) == [0.0, 8.0, 11.0]                  # {} ; a:5 + b:3 ; a:8 + b:3
    assert list(curve.users) == [0, 2, 2]
    assert (curve.expected_cost <= curve.budget).all()
