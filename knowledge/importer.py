"""Read KB articles from JSONL, a folder of Markdown files, or CSV — all or nothing.

Every line or file is validated first; one bad line fails the whole import with its line
number, so a half-imported KB never reaches customers.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hub.errors import ImportFailed
from hub.http import describe_validation_error
from knowledge.articles import ArticleInput

MAX_REPORTED_ERRORS = 10
LIST_SEPARATOR = "|"


def read_articles(path: Path) -> list[ArticleInput]:
    """Parse every article at `path` (a .jsonl/.json file, a .csv file, or a Markdown folder)."""
    if not path.exists():
        raise ImportFailed(f"{path} does not exist.")
    if path.is_dir():
        return _read_markdown_folder(path)
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".json", ".ndjson"}:
        return _read_jsonl(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in {".md", ".markdown"}:
        return [_markdown_article(path)]
    raise ImportFailed(f"{path.name}: import reads .jsonl, .csv or a folder of .md files.")


def _fail_if_errors(errors: list[str], source: Path) -> None:
    if errors:
        shown = "\n".join(errors[:MAX_REPORTED_ERRORS])
        more = (
            f"\n… and {len(errors) - MAX_REPORTED_ERRORS} more"
            if len(errors) > MAX_REPORTED_ERRORS
            else ""
        )
        raise ImportFailed(
            f"Nothing was imported: {len(errors)} problem(s) in {source}:\n{shown}{more}",
            errors=errors[:MAX_REPORTED_ERRORS],
        )


def _validate(data: dict[str, Any], where: str, errors: list[str]) -> ArticleInput | None:
    try:
        return ArticleInput.model_validate(data)
    except ValidationError as error:
        errors.append(f"{where}: {describe_validation_error(error)}")
        return None


def _check_duplicates(items: list[tuple[str, ArticleInput]], errors: list[str]) -> None:
    seen: dict[str, str] = {}
    for where, item in items:
        if item.id is None:
            continue
        if item.id in seen:
            errors.append(f"{where}: id {item.id!r} appears again (first at {seen[item.id]})")
        else:
            seen[item.id] = where


def _read_jsonl(path: Path) -> list[ArticleInput]:
    errors: list[str] = []
    items: list[tuple[str, ArticleInput]] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFailed(f"{path.name} is not UTF-8 text: {error}.") from error
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            errors.append(f"{where}: not valid JSON ({error.msg} at column {error.colno})")
            continue
        if not isinstance(data, dict):
            errors.append(f"{where}: expected a JSON object")
            continue
        kind = data.get("kind", "article")
        if kind != "article":
            continue  # query lines and other kinds belong to evaluation files
        article = _validate(data, where, errors)
        if article is not None:
            items.append((where, article))
    _check_duplicates(items, errors)
    _fail_if_errors(errors, path)
    return [item for _, item in items]


def _split_list(value: str | None) -> list[str]:
    if not value:
        return []
    parts = value.replace("\n", LIST_SEPARATOR).split(LIST_SEPARATOR)
    return [p.strip() for p in parts if p.strip()]


def _read_csv(path: Path) -> list[ArticleInput]:
    errors: list[str] = []
    items: list[tuple[str, ArticleInput]] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFailed(f"{path.name} is not UTF-8 text: {error}.") from error
    reader = csv.DictReader(io.StringIO(text))
    missing = {"title", "body"} - set(reader.fieldnames or [])
    if missing:
        raise ImportFailed(f"{path.name}: the header row needs the columns {sorted(missing)}.")
    for row in reader:
        where = f"line {reader.line_num}"
        if None in row:
            errors.append(f"{where}: more cells than header columns")
            continue
        data: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
        data["questions"] = _split_list(row.get("questions"))
        data["tags"] = _split_list(row.get("tags"))
        article = _validate(data, where, errors)
        if article is not None:
            items.append((where, article))
    _check_duplicates(items, errors)
    _fail_if_errors(errors, path)
    return [item for _, item in items]


def _read_markdown_folder(folder: Path) -> list[ArticleInput]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".md", ".markdown"})
    if not files:
        raise ImportFailed(f"{folder} holds no .md files.")
    errors: list[str] = []
    items: list[tuple[str, ArticleInput]] = []
    for file in files:
        try:
            items.append((str(file.relative_to(folder)), _markdown_article(file)))
        except ImportFailed as error:
            errors.append(error.message)
    _check_duplicates(items, errors)
    _fail_if_errors(errors, folder)
    return [item for _, item in items]


def _markdown_article(path: Path) -> ArticleInput:
    """One article per file: optional YAML front matter, then `# Title`, then the body."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFailed(f"{path.name}: not UTF-8 text ({error}).") from error
    meta: dict[str, Any] = {}
    if text.startswith("---"):
        head, sep, rest = text[3:].partition("\n---")
        if not sep:
            raise ImportFailed(f"{path.name}: front matter opened with '---' is never closed.")
        try:
            loaded = yaml.safe_load(head) or {}
        except yaml.YAMLError as error:
            raise ImportFailed(f"{path.name}: front matter is not valid YAML ({error}).") from error
        if not isinstance(loaded, dict):
            raise ImportFailed(f"{path.name}: front matter must be key: value pairs.")
        meta = loaded
        text = rest.lstrip("-").lstrip("\n")
    lines = text.strip().splitlines()
    if "title" not in meta and lines and lines[0].startswith("# "):
        meta["title"] = lines[0][2:].strip()
        lines = lines[1:]
    meta.setdefault("id", path.stem)
    meta["body"] = "\n".join(lines).strip()
    for key in ("questions", "tags"):
        if isinstance(meta.get(key), str):
            meta[key] = _split_list(meta[key])
    errors: list[str] = []
    article = _validate(meta, path.name, errors)
    if article is None:
        raise ImportFailed(errors[0])
    return article
