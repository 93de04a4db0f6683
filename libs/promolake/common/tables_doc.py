"""Renders every table promolake writes (promolake.common.tables) as Markdown for docs/tables.md, so the
column documentation and the declared schemas cannot drift apart (a test compares them).

    python -m promolake.common.tables_doc > docs/tables.md
"""
from __future__ import annotations

from promolake.common.tables import TABLES

LAYERS = {
    "promo": "Promotion: offer scores and the promotion assignments marketing operations consume "
             "(promolake score)",
    "ml": "ML: model outputs - ALS factors, candidates for the promotion engine, evaluations (promolake train-als)",
    "gold": "Gold: features as of a date (promolake features)",
    "ops": "Ops: audit logs and data-quality results",
    "silver": "Silver: typed, validated, de-duplicated (promolake ingest)",
    "bronze": "Bronze: raw records as delivered (promolake ingest)",
}
HEADER = """# Tables

Every table promolake writes, generated from `libs/promolake/common/tables.py` (the declared schemas
that are checked before every write; the same text is stored as table and column comments).
Regenerate with `python -m promolake.common.tables_doc > docs/tables.md`.

Locally a table `<layer>.<name>` is the path-based Delta table `<lake root>/<layer>/<name>`
(`lakehouse/` by default); on Databricks it is `<catalog>.<schema of the layer>.<name>` in Unity
Catalog (conf/<env>.yml). Landing files are described in [data-contract.md](data-contract.md).
"""


def tables_markdown() -> str:
    lines = [HEADER]
    for layer, title in LAYERS.items():
        lines += [f"## {title}", ""]
        for t in (t for t in TABLES.values() if t.layer == layer):
            lines += [f"### {t.logical_name}", "", t.doc, "", f"Key: ({', '.join(t.keys)})."
                      + (f" Partitioned by {', '.join(t.partition_by)}." if t.partition_by else ""), "",
                      "| column | type | meaning |", "|---|---|---|"]
            lines += [f"| {f.name} | {f.dtype.simpleString()} | {f.doc.replace('|', '/')} |" for f in t.fields]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(tables_markdown(), end="")
