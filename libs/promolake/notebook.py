"""Run a Databricks source notebook (notebooks/*.py) on this machine, top to bottom.

Databricks gives a notebook `dbutils`, `spark`, `display` and `displayHTML`; here `dbutils.widgets` is
a small stand-in holding the values given on the command line (widgets not given keep the default the
notebook declares), `display` prints a DataFrame's first rows and matplotlib draws off-screen (figures
are saved next to the lake when --figures is given). Cells marked `# MAGIC` are comments to Python, so
`%pip` / `%md` cells are skipped.

    python -m promolake.notebook notebooks/01_explore_lake.py env=local
    python -m promolake.notebook notebooks/04_promotion_campaign.py env=local budget=500 train=yes
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys
from typing import Any, Mapping


class LocalWidgets:
    """dbutils.widgets: text, dropdown, combobox, multiselect, get, getAll, remove, removeAll."""

    def __init__(self, values: Mapping[str, str] | None = None):
        self._given = dict(values or {})
        self._values: dict[str, str] = {}
        self._choices: dict[str, list[str]] = {}

    def _declare(self, name: str, default: str, choices=None) -> None:
        value = str(self._given.get(name, default))
        if choices is not None:
            choices = [str(c) for c in choices]
            if value not in choices:
                raise ValueError(f"widget {name}: {value!r} is not one of {choices}")
            self._choices[name] = choices
        self._values[name] = value

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:  # noqa: N803 - Databricks API
        self._declare(name, defaultValue)

    def dropdown(self, name: str, defaultValue: str, choices, label: str | None = None) -> None:  # noqa: N803
        self._declare(name, defaultValue, choices)

    combobox = text

    def multiselect(self, name: str, defaultValue: str, choices, label: str | None = None) -> None:  # noqa: N803
        self._declare(name, defaultValue)

    def get(self, name: str) -> str:
        if name not in self._values:
            raise ValueError(f"no widget named {name!r} (declared: {sorted(self._values)})")
        return self._values[name]

    def getAll(self) -> dict[str, str]:  # noqa: N802 - Databricks API
        return dict(self._values)

    def remove(self, name: str) -> None:
        self._values.pop(name, None)

    def removeAll(self) -> None:  # noqa: N802 - Databricks API
        self._values.clear()

    def unknown(self) -> list[str]:
        """Values given that no widget of the notebook declared (a misspelt name)."""
        return sorted(set(self._given) - set(self._values))


class LocalDbutils:
    def __init__(self, widgets: Mapping[str, str] | None = None):
        self.widgets = LocalWidgets(widgets)


def display(obj: Any, rows: int = 20) -> None:
    """Databricks' display(): a Spark or pandas DataFrame as text; a matplotlib figure is left to plt."""
    if hasattr(obj, "show") and hasattr(obj, "schema"):
        obj.show(rows, truncate=60)
    elif hasattr(obj, "to_string"):
        print(obj.head(rows).to_string())
    elif obj is not None and not hasattr(obj, "savefig"):
        print(obj)


def display_html(html: str) -> None:
    print(f"[HTML, {len(html):,} characters]")


def run_notebook(path: str, widgets: Mapping[str, str] | None = None,
                 figures_dir: str | None = None) -> dict[str, Any]:
    """Execute the notebook at path as a script with the Databricks globals stood in; returns its globals.
    Raises ValueError for a widget value the notebook does not declare."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dbutils = LocalDbutils(widgets)
    shown = []
    original_show = plt.show

    def show(*_a, **_k):
        for num in plt.get_fignums():
            fig = plt.figure(num)
            if figures_dir:
                os.makedirs(figures_dir, exist_ok=True)
                name = os.path.join(figures_dir, f"{os.path.splitext(os.path.basename(path))[0]}_{len(shown) + 1}.png")
                fig.savefig(name, dpi=100)
                print(f"[figure saved: {name}]")
            shown.append(fig)
        plt.close("all")

    plt.show = show
    try:
        out = runpy.run_path(path, init_globals={"dbutils": dbutils, "display": display, "displayHTML": display_html},
                             run_name="__main__")
    finally:
        plt.show = original_show
        plt.close("all")
    unknown = dbutils.widgets.unknown()
    if unknown:
        raise ValueError(f"{path}: no widgets named {unknown} (declared: {sorted(dbutils.widgets.getAll())})")
    out["_figures"] = len(shown)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m promolake.notebook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("widgets", nargs="*", metavar="NAME=VALUE")
    parser.add_argument("--figures", default=None, help="save the notebook's figures in this folder")
    args = parser.parse_args(argv)
    values = {}
    for item in args.widgets:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"{item!r}: widgets are given as NAME=VALUE")
        values[name] = value
    run_notebook(args.path, values, args.figures)
    return 0


def conf_overrides(text: str) -> list[str]:
    """The notebooks' `conf` widget: dotted-key overrides separated by ';' or new lines, e.g.
    "promotion.budget=500; als.tuning.trials=4" (the same KEY=VALUE form as the CLI's --conf)."""
    parts = [p.strip() for chunk in text.splitlines() for p in chunk.split(";")]
    bad = [p for p in parts if p and "=" not in p]
    if bad:
        raise ValueError(f"conf widget: {bad} are not KEY=VALUE")
    return [p for p in parts if p]


if __name__ == "__main__":
    sys.exit(main())

