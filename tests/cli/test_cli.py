"""The `servicehub` command as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_KB


def servicehub(
    *args: str, data_dir: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SERVICEHUB_DATA_DIR": str(data_dir)}
    env.pop("SERVICEHUB_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help_explains_every_command(tmp_path: Path) -> None:
    result = servicehub("--help", data_dir=tmp_path)
    assert result.returncode == 0
    for command in ("serve", "kb", "db"):
        assert command in result.stdout
    kb_help = servicehub("kb", "--help", data_dir=tmp_path).stdout
    for command in ("import", "eval", "reindex"):
        assert command in kb_help
    assert "--no-demo" in servicehub("serve", "--help", data_dir=tmp_path).stdout


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    result = servicehub("db", "upgrade", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(was empty)" in result.stdout
    assert (tmp_path / "servicehub.db").exists()
    again = servicehub("db", "upgrade", data_dir=tmp_path)
    head = re.search(r"revision (\w+)", result.stdout)
    assert head is not None
    assert f"revision {head.group(1)} (was {head.group(1)})" in again.stdout


def test_kb_import_then_reimport(tmp_path: Path) -> None:
    source = tmp_path / "kb.jsonl"
    rows = [
        {
            "id": "x1",
            "title": "信用卡挂失",
            "body": "拨打热线挂失。",
            "lang": "zh",
            "category": "card",
        },
        {
            "id": "x2",
            "title": "Annual fee",
            "body": "Spend six times a year to waive it.",
            "lang": "en",
            "category": "card",
        },
    ]
    source.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = servicehub("kb", "import", str(source), data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "Imported 2 articles" in result.stdout and "2 new or changed" in result.stdout
    again = servicehub("kb", "import", str(source), data_dir=tmp_path / "data")
    assert "0 new or changed, 2 unchanged" in again.stdout


def test_kb_import_of_a_bad_file_says_which_line_and_imports_nothing(tmp_path: Path) -> None:
    source = tmp_path / "kb.jsonl"
    source.write_text('{"id": "ok", "title": "t", "body": "b"}\n{"id": "bad"\n', encoding="utf-8")
    result = servicehub("kb", "import", str(source), data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert "line 2" in result.stderr and "Nothing was imported" in result.stderr
    assert "Traceback" not in result.stderr


def test_kb_import_of_a_missing_file(tmp_path: Path) -> None:
    result = servicehub("kb", "import", str(tmp_path / "nope.jsonl"), data_dir=tmp_path)
    assert result.returncode == 1 and "does not exist" in result.stderr


@pytest.mark.slow
def test_kb_eval_meets_the_targets_on_the_dev_set(tmp_path: Path) -> None:
    result = servicehub("kb", "eval", str(SHARED_KB), data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    figures = {
        name: float(value)
        for name, value in re.findall(
            r"(Recall@1|Recall@3|MRR)\s*[:=]?\s*([01]\.\d+)", result.stdout
        )
    }
    assert figures["Recall@1"] >= 0.90 and figures["Recall@3"] >= 0.97, result.stdout
