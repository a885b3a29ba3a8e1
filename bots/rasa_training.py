"""Train the Rasa model of `bots/rasa/` unless a model of exactly these files already exists.

Runs inside the Rasa environment (Python 3.10, `python -m bots.rasa_training`), so it uses
only the standard library and PyYAML. The model's file name carries a fingerprint of the
training config (with any epoch override), the domain, the training data and Rasa's version:
an unchanged project is never retrained, and a changed one never serves a stale model.

    python -m bots.rasa_training [--out DIR] [--epochs N] [--project DIR]

Prints the model's path on the last line of its output.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().with_name("rasa")
MODEL_PREFIX = "servicehub-"
# Components whose `epochs` an override sets (the rest have no epochs).
EPOCH_COMPONENTS = {"DIETClassifier", "TEDPolicy", "ResponseSelector", "UnexpecTEDIntentPolicy"}
# What Rasa reads when training; handoff.yml and the actions are the hub's and the SDK's.
TRAINING_FILES = ("config.yml", "domain.yml")
TRAINING_DATA_DIR = "data"


class TrainingError(RuntimeError):
    """The model could not be trained; the message says why."""


def default_models_dir() -> Path:
    """Return `$SERVICEHUB_DATA_DIR/rasa/models` (the data dir defaults to ./var)."""
    return Path(os.environ.get("SERVICEHUB_DATA_DIR") or "var") / "rasa" / "models"


def training_config(project: Path, epochs: int | None) -> str:
    """Return config.yml as YAML text, with DIET's (and TED's) epochs set when asked."""
    config = _read_yaml(project / "config.yml")
    if epochs is not None:
        if epochs < 1:
            raise TrainingError(f"epochs must be at least 1, not {epochs}")
        for section in ("pipeline", "policies"):
            for component in config.get(section) or []:
                if isinstance(component, dict) and component.get("name") in EPOCH_COMPONENTS:
                    component["epochs"] = epochs
    return yaml.safe_dump(config, allow_unicode=True, sort_keys=False)


def training_data_files(project: Path) -> list[Path]:
    """List the NLU, rules and stories files Rasa trains on."""
    files = sorted((project / TRAINING_DATA_DIR).glob("*.yml"))
    if not files:
        raise TrainingError(f"{project / TRAINING_DATA_DIR} holds no training data")
    return files


def fingerprint(project: Path, config_text: str, rasa_version: str) -> str:
    """Hash everything that shapes the model, so equal hashes mean equal models."""
    digest = hashlib.sha256()
    digest.update(f"rasa {rasa_version}\n".encode())
    digest.update(config_text.encode("utf-8"))
    for path in [project / "domain.yml", *training_data_files(project)]:
        digest.update(f"\n--- {path.relative_to(project)}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_path(out: Path, print_: str) -> Path:
    return out / f"{MODEL_PREFIX}{print_}.tar.gz"


def ensure_model(project: Path, out: Path, epochs: int | None = None) -> tuple[Path, bool]:
    """Train into `out` unless the model of these files exists; return (path, trained)."""
    # Rasa runs in the project directory: every path it gets must be absolute.
    project, out = project.resolve(), out.resolve()
    config_text = training_config(project, epochs)
    print_ = fingerprint(project, config_text, metadata.version("rasa"))
    target = model_path(out, print_)
    if target.exists():
        return target, False
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / f".config-{print_}.yml"
    config_file.write_text(config_text, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "rasa",
        "train",
        "--config",
        str(config_file),
        "--domain",
        str(project / "domain.yml"),
        "--data",
        str(project / TRAINING_DATA_DIR),
        "--out",
        str(out),
        "--fixed-model-name",
        target.name.removesuffix(".tar.gz"),
    ]
    env = {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        # Rasa caches trained components; keep the cache next to the models, not in $HOME.
        "RASA_CACHE_DIRECTORY": str(out / ".cache"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    try:
        subprocess.run(command, cwd=project, env=env, check=True)
    except subprocess.CalledProcessError as error:
        raise TrainingError(f"rasa train failed with exit status {error.returncode}") from error
    finally:
        config_file.unlink(missing_ok=True)
    if not target.exists():
        raise TrainingError(f"rasa train finished but {target} is missing")
    _remove_stale(out, keep=target)
    return target, True


def _remove_stale(out: Path, keep: Path) -> None:
    """Drop models of earlier project versions so edits do not pile up files."""
    for old in out.glob(f"{MODEL_PREFIX}*.tar.gz"):
        if old != keep:
            old.unlink(missing_ok=True)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise TrainingError(f"missing Rasa project file {path}") from error
    if not isinstance(data, dict):
        raise TrainingError(f"{path} must hold a mapping at the top level")
    return data


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, train when needed, print the model path."""
    parser = argparse.ArgumentParser(prog="python -m bots.rasa_training", description=__doc__)
    parser.add_argument("--project", type=Path, default=PROJECT_DIR, help="the Rasa project")
    parser.add_argument("--out", type=Path, default=None, help="where models are kept")
    parser.add_argument("--epochs", type=int, default=None, help="override DIET's epochs")
    args = parser.parse_args(argv)
    epochs = args.epochs
    if epochs is None and os.environ.get("SERVICEHUB_RASA_EPOCHS", "").strip():
        epochs = int(os.environ["SERVICEHUB_RASA_EPOCHS"])
    out = args.out or default_models_dir()
    started = time.monotonic()
    try:
        path, trained = ensure_model(args.project, out, epochs)
    except TrainingError as error:
        print(f"rasa training: {error}", file=sys.stderr)
        return 1
    how = f"trained in {time.monotonic() - started:.0f} s" if trained else "up to date"
    print(f"rasa model {how}:")
    print(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
