"""The nightly job's file (SPEC 13): `load_job` reads JOB.yaml (bounded YAML with line
numbers, no aliases) and reports every mistake in it at once, each with its line; paths in
it are relative to the job file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from t360cli.errors import UsageError
from t360cli.suggest import closest
from t360cli.yamlnodes import YList, YMap, _convert, compose_bounded

TOP_KEYS = ("config", "feeds", "on_customers_failure")
FEED_KEYS = ("name", "files", "mapping", "optional")
POLICIES = ("stop", "continue")


@dataclass(frozen=True)
class Feed:
    """One entry of `feeds:` as written (paths relative to the job file)."""

    name: str
    files: list[str]
    mapping: str
    optional: bool = False
    line: int = 0


@dataclass(frozen=True)
class Job:
    path: Path
    feeds: list[Feed]
    config: str | None = None
    on_customers_failure: str = "stop"

    @property
    def name(self) -> str:
        """The job's name (the lock's): the job file's name without its extension."""
        return self.path.name.split(".")[0] or "job"

    @property
    def config_path(self) -> str | None:
        return self.here(self.config) if self.config else None

    def here(self, path: str) -> str:
        """A path of the job file: relative ones are taken from the job file's folder."""
        full = Path(path).expanduser()
        return str(full if full.is_absolute() else self.path.parent / full)


def load_job(path: Path) -> Job:
    """The job file, checked: every mistake in one UsageError (exit 2), each with its line."""
    node = compose_bounded(path, "job file", UsageError)
    if node is None:
        raise UsageError(f"job file {path} is empty.", "A job lists its feeds under feeds: (see the README).")
    try:
        tree = _convert(node, str(path))
    except RecursionError:
        raise UsageError(f"job file {path}: the YAML is nested too deeply.") from None
    problems: list[str] = []
    job = _job_of(path, tree, problems)
    if problems or job is None:
        raise UsageError(f"invalid job file {path}:\n" + "\n".join(problems))
    return job


def _unknown(tree: YMap, allowed: tuple[str, ...], label: str) -> list[str]:
    out = []
    for key in tree:
        if key not in allowed:
            close = closest(key, allowed)
            hint = f"; did you mean {close}?" if close else f" (known: {', '.join(allowed)})"
            out.append(f"• line {tree.line_of(key)}: {label}unknown key '{key}'{hint}")
    return out


def _job_of(path: Path, tree: object, problems: list[str]) -> Job | None:
    if not isinstance(tree, YMap):
        problems.append("• line 1: a job file is a YAML map with feeds: (a list of feeds)")
        return None
    problems += _unknown(tree, TOP_KEYS, "")
    listed = tree.get("feeds")
    if not isinstance(listed, YList) or not listed:
        problems.append(
            f"• line {tree.line_of('feeds')}: feeds: must list the feeds, "
            "e.g. - {name: customers, files: customers-*.csv, mapping: customers.yaml}"
        )
        listed = YList()
        listed.item_lines = []
    feeds = [
        _feed(item, line, n, problems) for n, (item, line) in enumerate(zip(listed, listed.item_lines, strict=True), 1)
    ]
    _no_twins([feed for feed in feeds if feed is not None], problems)
    policy = tree.get("on_customers_failure") or "stop"
    if policy not in POLICIES:
        where = tree.line_of("on_customers_failure")
        problems.append(f"• line {where}: on_customers_failure: must be stop or continue, not {_show(policy)}")
    config = tree.get("config") or None
    if config is not None and not isinstance(config, str):
        problems.append(f"• line {tree.line_of('config')}: config: must be the path of a config file")
        config = None
    return Job(path, [feed for feed in feeds if feed is not None], config, str(policy))


def _show(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else "a list or a map"


def _feed(item: object, line: int, number: int, problems: list[str]) -> Feed | None:
    if not isinstance(item, YMap):
        problems.append(f"• line {line}: feed {number}: must be a map with name, files and mapping")
        return None
    name = item.get("name")
    label = f"feed '{name}': " if isinstance(name, str) and name else f"feed {number}: "
    found = len(problems)
    problems += _unknown(item, FEED_KEYS, label)
    if not isinstance(name, str) or not name.strip():
        problems.append(f"• line {item.line_of('name')}: {label}name: missing; give the feed a name")
    files = item.get("files")
    patterns = [files] if isinstance(files, str) else list(files) if isinstance(files, YList) else []
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        problems.append(
            f"• line {item.line_of('files')}: {label}files: give a path or a glob, or a list of them "
            "(relative to the job file)"
        )
    mapping = item.get("mapping")
    if not isinstance(mapping, str) or not mapping:
        problems.append(
            f"• line {item.line_of('mapping')}: {label}mapping: give the mapping file (relative to the job file)"
        )
    optional = item.get("optional", "false")
    if not isinstance(optional, str) or optional.lower() not in ("true", "false"):
        problems.append(f"• line {item.line_of('optional')}: {label}optional: must be true or false")
    if len(problems) > found:
        return None
    return Feed(str(name), [str(p) for p in patterns], str(mapping), str(optional).lower() == "true", item.line)


def _no_twins(feeds: list[Feed], problems: list[str]) -> None:
    first: dict[str, Feed] = {}
    for feed in feeds:
        if feed.name in first:
            problems.append(
                f"• line {feed.line}: feed '{feed.name}' is listed twice (first on line {first[feed.name].line}); "
                "give each feed its own name"
            )
        first.setdefault(feed.name, feed)
