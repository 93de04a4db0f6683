"""The promotion gate of the model registry: does the @challenger version replace the @champion?

`judge` is pure: the challenger passes when every metric with an absolute minimum reaches it and no
metric with a tolerance falls more than that tolerance below the champion's value on the same
holdout (every gated metric is "higher is better"; a metric the evaluation could not compute fails
the gate). The first model of a name becomes champion when it passes the minimums alone.

`apply_verdict` acts on the registry according to the mode:
- disabled: nothing is evaluated or written;
- dry_run: the verdict is reported only, the registry is left exactly as it was;
- enabled: the verdict and both versions' metrics go to the challenger version's tags and description,
  and the `champion` alias moves to the challenger only when it passed.
The same client calls work against the local sqlite registry and Unity Catalog's (databricks-uc).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from promolake.common.tracking import CHALLENGER, CHAMPION

MODES = ("disabled", "dry_run", "enabled")


@dataclass(frozen=True)
class Verdict:
    model: str
    challenger: str                           # version
    champion: str | None                      # version; None: no champion yet
    challenger_metrics: Mapping[str, float]
    champion_metrics: Mapping[str, float] | None
    passed: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        head = (f"{self.model} v{self.challenger} {'PASSED' if self.passed else 'FAILED'} the promotion gate"
                + (f" against champion v{self.champion}" if self.champion else " (no champion yet)"))
        return head + (": " + "; ".join(self.reasons) if self.reasons else "")


def judge(challenger: Mapping[str, float], champion: Mapping[str, float] | None,
          minimums: Mapping[str, float], tolerances: Mapping[str, float]) -> tuple[bool, tuple[str, ...]]:
    """(passed, reasons): one reason per check, failed checks first."""
    failed, ok = [], []
    for metric, low in sorted(minimums.items()):
        value = challenger.get(metric)
        if value is None or value != value:
            failed.append(f"{metric} missing from the challenger's evaluation (minimum {low:g})")
        elif value < low:
            failed.append(f"{metric} {value:.4g} below the minimum {low:g}")
        else:
            ok.append(f"{metric} {value:.4g} >= minimum {low:g}")
    if champion is not None:
        for metric, tol in sorted(tolerances.items()):
            new, old = challenger.get(metric), champion.get(metric)
            if new is None or new != new:
                failed.append(f"{metric} missing from the challenger's evaluation")
            elif old is None or old != old:
                ok.append(f"{metric} {new:.4g} (champion has none to compare)")
            elif new < old - tol:
                failed.append(f"{metric} {new:.4g} regresses more than {tol:g} from the champion's {old:.4g}")
            else:
                ok.append(f"{metric} {new:.4g} vs champion {old:.4g} (tolerance {tol:g})")
    return not failed, tuple(failed + ok)


def alias_version(client, name: str, alias: str) -> str | None:
    """The version `alias` names, or None where the model or the alias does not exist. An unavailable
    registry is not 'no alias': that error is raised (after the client's retries), never read as None."""
    from mlflow.exceptions import MlflowException

    from promolake.common.retry import transient_mlflow

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as err:
        if transient_mlflow(err):
            raise
        return None


def versions(client, name: str) -> tuple[str | None, str | None]:
    """(challenger version, champion version) of a registered model; None where the alias is unset."""
    return alias_version(client, name, CHALLENGER), alias_version(client, name, CHAMPION)


def apply_verdict(client, verdict: Verdict, mode: str) -> str:
    """Act on the registry (see the module docstring); returns what was done, in words."""
    if mode not in MODES:
        raise ValueError(f"validation.mode must be one of {MODES}, got {mode!r}")
    if mode == "disabled":
        return "gate disabled: nothing done"
    if mode == "dry_run":
        return ("dry run: would move @champion to v" + verdict.challenger if verdict.passed
                else "dry run: would keep " + (f"@champion v{verdict.champion}" if verdict.champion else "no champion"))
    name, version = verdict.model, verdict.challenger
    client.set_model_version_tag(name, version, "validation_status", "passed" if verdict.passed else "failed")
    client.set_model_version_tag(name, version, "validation_champion_version", verdict.champion or "none")
    for metric, value in verdict.challenger_metrics.items():
        client.set_model_version_tag(name, version, f"validation_{metric}", f"{value:.6g}")
    for metric, value in (verdict.champion_metrics or {}).items():
        client.set_model_version_tag(name, version, f"validation_champion_{metric}", f"{value:.6g}")
    client.update_model_version(name, version, description=verdict.summary())
    if verdict.passed:
        _move_champion(client, name, version, verdict.champion)
        return f"@champion moved to v{version}" + (f" (was v{verdict.champion})" if verdict.champion else "")
    return f"@champion kept at v{verdict.champion}" if verdict.champion else "no champion: the challenger failed"


def _move_champion(client, name: str, version: str, previous: str | None) -> None:
    """Point @champion at version, remembering the version it replaces (for rollback)."""
    from promolake.common import faults

    client.set_model_version_tag(name, version, "previous_champion", previous or "none")
    faults.point(f"before_alias:{name}:{CHAMPION}")
    client.set_registered_model_alias(name, CHAMPION, version)


def promote(client, name: str, version: str, reason: str) -> str:
    """Manual promotion (a person's decision, e.g. from notebook 05): @champion to `version`, with the
    reason and the replaced version in the version's tags. Refuses an empty reason."""
    if not reason.strip():
        raise ValueError("a manual promotion needs a reason (it is kept in the version's tags)")
    str(client.get_model_version(name, version).version)   # raises when the version does not exist
    _, previous = versions(client, name)
    if previous == str(version):
        return f"v{version} is already @champion"
    client.set_model_version_tag(name, str(version), "validation_status", "promoted_manually")
    client.set_model_version_tag(name, str(version), "promotion_reason", reason)
    _move_champion(client, name, str(version), previous)
    return f"@champion moved to v{version} by hand" + (f" (was v{previous})" if previous else "")


def rollback(client, name: str, reason: str) -> str:
    """Point @champion back at the version it replaced (the champion's previous_champion tag)."""
    _, current = versions(client, name)
    if current is None:
        raise ValueError(f"{name} has no @champion to roll back")
    previous = (client.get_model_version(name, current).tags or {}).get("previous_champion", "none")
    if previous == "none":
        raise ValueError(f"{name} v{current} replaced no earlier champion: nothing to roll back to")
    client.set_model_version_tag(name, current, "rolled_back", reason or "rolled back")
    client.set_registered_model_alias(name, CHAMPION, previous)
    return f"@champion rolled back from v{current} to v{previous}"


def registry_rows(client, names) -> list[dict]:
    """Every version of the named models: aliases, as_of, validation verdict and gated numbers, for the
    report and notebook 05. Aliases come from the registered model (search results leave them empty on
    the sqlite store); a name the registry does not know gives no rows."""
    import datetime as dt

    rows = []
    for name in names:
        try:
            found = client.search_model_versions(f"name='{name}'")
            by_version: dict[str, list[str]] = {}
            for alias, version in (client.get_registered_model(name).aliases or {}).items():
                by_version.setdefault(str(version), []).append(alias)
        except Exception:  # noqa: BLE001 - a registry without the model answers with an error on some stores
            found, by_version = [], {}
        for mv in sorted(found, key=lambda m: int(m.version)):
            tags = mv.tags or {}
            gated = {k[len("validation_"):]: v for k, v in sorted(tags.items()) if k.startswith("validation_")
                     and k not in ("validation_status", "validation_champion_version")
                     and not k.startswith("validation_champion_")}
            rows.append({"model": name, "version": int(mv.version),
                         "aliases": ", ".join(sorted(set(mv.aliases or []) | set(by_version.get(str(mv.version), [])))),
                         "as_of": tags.get("as_of", ""), "holdout": (f"{tags['holdout_start']} .. {tags['holdout_end']}"
                                                                    if "holdout_start" in tags else ""),
                         "validation": tags.get("validation_status", "not validated"),
                         "judged_against": tags.get("validation_champion_version", ""),
                         "metrics": ", ".join(f"{k} {v}" for k, v in gated.items()),
                         "run_id": mv.run_id,
                         "created": dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.timezone.utc)
                         .strftime("%Y-%m-%d %H:%M UTC")})
    return rows
