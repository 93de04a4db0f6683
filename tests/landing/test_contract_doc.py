"""docs/data-contract.md says what the code enforces: its generated part equals the contract's rendering,
and every rule the silver rules can emit is documented there."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from promolake.landing.contract import SOURCES
from promolake.landing.contract_doc import BEGIN, END, contract_markdown
from promolake.silver import rules

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"


def test_doc_matches_code():
    text = DOC.read_text()
    generated = text[text.index(BEGIN):text.index(END) + len(END)]
    assert generated == contract_markdown(), "regenerate: python -m promolake.landing.contract_doc"


def test_every_emitted_rule_is_documented(spark):  # building rule Columns needs a session
    settings = rules.RuleSettings(100, dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1))
    documented = [re.compile("^" + re.escape(n).replace(re.escape("<column>"), r"\w+") + "$")
                  for n in rules.RULE_DOCS]
    emitted = {name for s in SOURCES.values() for name, _ in rules._broken(s, settings)}
    emitted |= {"duplicate_key"} | {f"orphan_{c}" for refs in rules.REFERENCES.values() for c, _, _ in refs}
    undocumented = sorted(r for r in emitted if not any(p.match(r) for p in documented))
    assert undocumented == []
