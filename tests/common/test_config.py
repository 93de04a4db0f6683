"""Configuration: every environment loads; mistakes are refused with the key and the file named."""
from __future__ import annotations

from pathlib import Path

import pytest

from promolake.common.config import ENVIRONMENTS, ConfigError, load_config, validate_identifier

CONF = Path(__file__).resolve().parents[2] / "conf"


def write_conf(tmp_path: Path, base: str, local: str = "") -> Path:
    (tmp_path / "base.yml").write_text(base)
    (tmp_path / "local.yml").write_text(local)
    return tmp_path


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_loads(env):
    cfg = load_config(env, conf_dir=CONF, environ={})
    assert cfg.env == env
    assert cfg.lake.mode == ("path" if env == "local" else "unity_catalog")
    if env != "local":
        assert cfg.lake.catalog == f"promolake_{env}"


def test_local_paths_follow_promolake_home():
    cfg = load_config("local", conf_dir=CONF, environ={"PROMOLAKE_HOME": "/data/lh"})
    assert cfg.lake.root == "/data/lh"
    assert cfg.landing.root == "/data/lh/landing"
    assert load_config("local", conf_dir=CONF, environ={}).lake.root == "lakehouse"


def test_misspelt_key_names_key_and_file(tmp_path):
    d = write_conf(tmp_path, "world:\n  users: 10\n", "world:\n  userz: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config("local", conf_dir=d, environ={})
    msg = str(err.value)
    assert "world.userz" in msg and "unknown key" in msg and str(d / "local.yml") in msg


def test_wrong_type_names_key_value_and_origin(tmp_path):
    d = write_conf(tmp_path, "world:\n  users: many\n")
    with pytest.raises(ConfigError) as err:
        load_config("local", conf_dir=d, environ={})
    msg = str(err.value)
    assert "world.users" in msg and "'many'" in msg and str(d / "base.yml") in msg


def test_overrides_apply_in_order_and_are_validated(tmp_path):
    d = write_conf(tmp_path, "world:\n  users: 10\n", "world:\n  users: 20\n")
    assert load_config("local", conf_dir=d, environ={}).world.users == 20
    assert load_config("local", ["world.users=30"], conf_dir=d, environ={}).world.users == 30
    env = {"PROMOLAKE__WORLD__USERS": "40"}
    assert load_config("local", ["world.users=30"], conf_dir=d, environ=env).world.users == 40
    with pytest.raises(ConfigError, match=r"world\.users.*environment PROMOLAKE__WORLD__USERS"):
        load_config("local", conf_dir=d, environ={"PROMOLAKE__WORLD__USERS": "-1"})
    with pytest.raises(ConfigError, match=r"--conf world\.user"):
        load_config("local", ["world.user=3"], conf_dir=d, environ={})


def test_bad_override_syntax_and_unknown_env():
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config("local", ["world.users"], conf_dir=CONF, environ={})
    with pytest.raises(ConfigError, match="unknown environment 'qa'"):
        load_config("qa", conf_dir=CONF, environ={})


def test_missing_environment_variable_is_named(tmp_path):
    d = write_conf(tmp_path, "lake:\n  root: ${NO_SUCH_VAR}/x\n")
    with pytest.raises(ConfigError, match="NO_SUCH_VAR"):
        load_config("local", conf_dir=d, environ={})


@pytest.mark.parametrize("bad", ["main; DROP TABLE x", "a.b", "`x`", "1abc", "", "a-b"])
def test_identifiers_from_config_are_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        validate_identifier(bad)
    d = write_conf(tmp_path, f"lake:\n  mode: unity_catalog\n  catalog: '{bad}'\n")
    with pytest.raises(ConfigError, match="lake.catalog"):
        load_config("local", conf_dir=d, environ={})
    d = write_conf(tmp_path, f"lake:\n  schemas: {{silver: '{bad}'}}\n")
    with pytest.raises(ConfigError, match="lake.schemas"):
        load_config("local", conf_dir=d, environ={})


def test_unity_catalog_needs_catalog(tmp_path):
    d = write_conf(tmp_path, "lake:\n  mode: unity_catalog\n")
    with pytest.raises(ConfigError, match="needs lake.catalog"):
        load_config("local", conf_dir=d, environ={})


def test_config_is_frozen():
    cfg = load_config("local", conf_dir=CONF, environ={})
    with pytest.raises(Exception):
        cfg.world.users = 1  # type: ignore[misc]
