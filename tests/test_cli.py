"""The promolake command: clear refusals for bad input, and stages callable by name."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from promolake.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def test_bad_config_exits_2_naming_the_key(capsys):
    assert main(["ingest", "--conf", "ingest.max_text_lenght=5"]) == 2
    err = capsys.readouterr().err
    assert "ingest.max_text_lenght" in err and "unknown key" in err and "--conf" in err


def test_wrong_type_from_environment_is_named(monkeypatch, capsys):
    monkeypatch.setenv("PROMOLAKE__WORLD__DAYS", "ten")
    assert main(["generate"]) == 2
    assert "world.days" in capsys.readouterr().err


def test_every_stage_has_a_subcommand_and_a_job():
    from promolake.pipeline import RUN_ALL, STAGES

    parser = build_parser()
    for stage in list(STAGES) + ["run-all"]:
        assert parser.parse_args([stage]).stage == stage
        assert (REPO / "jobs" / f"{stage.replace('-', '_')}.py").is_file()
    assert set(RUN_ALL) <= set(STAGES)


def test_unknown_env_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "--env", "qa"])
    assert exc.value.code == 2
    assert "invalid choice: 'qa'" in capsys.readouterr().err


def test_console_script_and_job_entry_print_help():
    out = subprocess.run([sys.executable, str(REPO / "jobs" / "ingest.py"), "--help"], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 0 and "--conf KEY=VALUE" in out.stdout


def test_features_as_of_must_be_a_date(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["features", "--as-of", "2024-13-01"])
    assert exc.value.code == 2
    assert "'2024-13-01' is not a date" in capsys.readouterr().err
    args = build_parser().parse_args(["features", "--as-of", "2024-03-01", "--as-of", "2024-03-08"])
    assert [str(d) for d in args.as_of] == ["2024-03-01", "2024-03-08"]
