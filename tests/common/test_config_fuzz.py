"""Configuration fuzz: any invalid value for any typed setting, from an override or the environment, is
refused with a ConfigError that names the key (never a traceback from deep inside a stage)."""
from __future__ import annotations

import os
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from promolake.common.config import Config, ConfigError, load_config

CONF = Path(__file__).resolve().parents[2] / "conf"
EXAMPLES = int(os.environ.get("PROMOLAKE_FUZZ_EXAMPLES", "60"))
ENVIRON = {"PROMOLAKE_HOME": "/tmp/fuzz-lake", "PROMOLAKE_PII_SALT": "s"}


def leaves(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, tuple]]:
    """(dotted key, kind, choices) of every int, float, bool and Literal setting, nested models included."""
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        key = f"{prefix}{name}"
        args = typing.get_args(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += leaves(ann, key + ".")
        elif typing.get_origin(ann) is typing.Literal:
            out.append((key, "literal", args))
        elif ann in (int, float, bool):
            out.append((key, ann.__name__, ()))
        elif type(None) in args and len(args) == 2 and args[0] in (int, float):
            out.append((key, args[0].__name__, ()))        # int | None: None is fine, text is not
    return out


LEAVES = [leaf for leaf in leaves(Config) if leaf[0] != "env"]
BOOL_WORDS = {"0", "1", "true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"}


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


words = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz_-"), min_size=1, max_size=12)


def bad_value(kind: str, choices: tuple):
    """Values the setting must refuse (YAML-parsed the way an override is)."""
    text = words.filter(lambda w: not is_number(w) and w.lower() not in BOOL_WORDS | {"null", "nan", "inf", "-inf"})
    structures = st.one_of(st.lists(st.integers(), min_size=1, max_size=3), st.dictionaries(words, st.integers(),
                                                                                         min_size=1, max_size=2))
    if kind == "literal":
        return st.one_of(text.filter(lambda w: w not in choices), st.integers(10_000, 10**9), structures)
    return st.one_of(text, structures)


@pytest.mark.parametrize("key,kind,choices", LEAVES[:1])
def test_the_fuzz_covers_every_section(key, kind, choices):
    sections = {k.split(".")[0] for k, _, _ in LEAVES}
    assert sections >= {"spark", "lake", "world", "ingest", "features", "als", "text", "promotion", "validation"}
    assert len(LEAVES) > 60


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_an_invalid_value_is_refused_naming_the_key(data):
    key, kind, choices = data.draw(st.sampled_from(LEAVES), label="setting")
    value = data.draw(bad_value(kind, choices), label="value")
    via_env = data.draw(st.booleans(), label="from the environment")
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    environ = dict(ENVIRON)
    overrides = []
    if via_env:
        environ["PROMOLAKE__" + key.upper().replace(".", "__")] = text
    else:
        overrides.append(f"{key}={text}")
    with pytest.raises(ConfigError) as err:
        load_config("local", overrides=overrides, conf_dir=CONF, environ=environ)
    assert key in str(err.value), str(err.value)


def bounded(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, float | None, float | None]]:
    """(dotted key, int|float, lowest allowed, highest allowed) of every numeric setting with bounds."""
    import annotated_types as at

    out = []
    for name, field in model.model_fields.items():
        ann, key = field.annotation, f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += bounded(ann, key + ".")
            continue
        base = next((a for a in (ann, *typing.get_args(ann)) if a in (int, float)), None)
        lo = hi = None
        for m in field.metadata:
            if isinstance(m, at.Ge):
                lo = m.ge
            elif isinstance(m, at.Gt):
                lo = m.gt + (1 if base is int else 1e-9)
            elif isinstance(m, at.Le):
                hi = m.le
            elif isinstance(m, at.Lt):
                hi = m.lt - (1 if base is int else 1e-9)
        if base is not None and (lo is not None or hi is not None):
            out.append((key, base.__name__, lo, hi))
    return out


BOUNDED = bounded(Config)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.data())
def test_a_value_out_of_range_is_refused_naming_the_key(data):
    key, kind, lo, hi = data.draw(st.sampled_from(BOUNDED), label="setting")
    sides = [s for s, b in (("below", lo), ("above", hi)) if b is not None]
    side = data.draw(st.sampled_from(sides), label="side")
    step = data.draw(st.integers(1, 10**6) if kind == "int" else st.floats(1e-3, 1e6), label="by")
    value = (lo - step) if side == "below" else (hi + step)
    with pytest.raises(ConfigError) as err:
        load_config("local", overrides=[f"{key}={value!r}"], conf_dir=CONF, environ=ENVIRON)
    assert key in str(err.value), str(err.value)


def test_the_range_fuzz_covers_the_bounded_settings():
    assert len(BOUNDED) > 40 and {"promotion.budget", "als.k", "text.batch_size"} <= {b[0] for b in BOUNDED}


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from(LEAVES))
def test_setting_a_value_to_itself_changes_nothing(leaf):
    key = leaf[0]
    cfg = load_config("local", conf_dir=CONF, environ=ENVIRON)
    current = cfg
    for part in key.split("."):
        current = getattr(current, part)
    again = load_config("local", overrides=[f"{key}={yaml.safe_dump(current, default_flow_style=True).strip()}"
                                            .removesuffix("...").strip()], conf_dir=CONF, environ=ENVIRON)
    assert again == cfg
