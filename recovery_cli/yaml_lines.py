"""YAML loading that remembers the line of every key, so config errors can name it.

A config is hostile input until proven otherwise: the event stream is checked for size and
nesting before anything is composed, and the composed node graph (aliases followed) before
any Python object is built, so an alias bomb or a deep nest costs milliseconds, not gigabytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from recovery_cli.errors import ConfigError, ConfigProblem

KeyPath = tuple[str | int, ...]
MAX_NODES = 50_000  # values in the document with every alias expanded
MAX_DEPTH = 40  # nested mappings and lists, aliases followed
NODE_EVENTS = (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)

# libyaml's parser when PyYAML was built with it: the pure-Python one costs ~25 ms a config
if TYPE_CHECKING:
    _BaseLoader = yaml.SafeLoader
else:
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SafeLoader(_BaseLoader):
    """The safe loader, with a value Python refuses (2026-02-30, a 5,000-digit integer)
    reported as a YAML error at its line instead of escaping as a ValueError."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:
            reason = str(exc).split(";")[0]
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value: {reason}", node.start_mark
            ) from None


SAFE_LOADER: type[yaml.SafeLoader] = SafeLoader


@dataclass
class Document:
    filename: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    columns: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int:
        """The line of the deepest key of ``path`` present in the file."""
        return self._deepest(path)[0]

    def column_of(self, path: KeyPath) -> int:
        """The column (from 1) where that key starts."""
        return self._deepest(path)[1]

    def _deepest(self, path: KeyPath) -> tuple[int, int]:
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line, self.columns.get(tuple(path[:end]), 1)
        return 1, 1


class _TooBig(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load(text: str, filename: str) -> Document:
    try:
        _check_events(text)
        node = _compose(text)
        if node is not None:
            _check_graph(node)
        document = Document(filename, None)
        problems = _index(node, document) if node is not None else []
        if problems:
            raise ConfigError(problems)
        document.data = _construct(node) if node is not None else None
    except _TooBig as exc:
        raise ConfigError([ConfigProblem(filename, exc.line, "", exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        column = mark.column + 1 if mark else 0
        raise ConfigError(
            [ConfigProblem(filename, line, "", f"YAML syntax error: {exc.problem}", column)]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(filename, 1, "", f"YAML error: {exc}")]) from None
    return document


def _check_events(text: str) -> None:
    """Count nodes and nesting in the event stream, so composing is bounded too."""
    nodes = depth = 0
    for event in yaml.parse(text, Loader=SAFE_LOADER):
        if isinstance(event, NODE_EVENTS):
            nodes += 1
            if nodes > MAX_NODES:
                raise _TooBig(_line(event), _too_many())
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooBig(_line(event), _too_deep())
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _compose(text: str) -> yaml.Node | None:
    loader = SAFE_LOADER(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _construct(node: yaml.Node) -> Any:
    loader = SAFE_LOADER("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_graph(root: yaml.Node) -> None:
    """Size and depth of the document with every alias expanded, memoised per node so the
    check itself stays linear; an alias inside its own anchor is refused. Iterative."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    started: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        kids = _children(node)
        if finished:
            size[id(node)] = 1 + sum(size[id(kid)] for kid in kids)
            height[id(node)] = 1 + max((height[id(kid)] for kid in kids), default=0)
            started.discard(id(node))
            if size[id(node)] > MAX_NODES:
                raise _TooBig(_line(node), _too_many())
            if height[id(node)] > MAX_DEPTH:
                raise _TooBig(_line(node), _too_deep())
        elif id(node) in started:
            raise _TooBig(_line(node), "an alias refers to the value that contains it")
        elif id(node) not in size:
            started.add(id(node))
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids if id(kid) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _line(item: yaml.Node | yaml.Event) -> int:
    return item.start_mark.line + 1 if item.start_mark else 1


def _too_many() -> str:
    return f"the document holds more than {MAX_NODES} values (each use of an alias counts)"


def _too_deep() -> str:
    return f"values are nested more than {MAX_DEPTH} levels deep (aliases included)"


def _index(root: yaml.Node, document: Document) -> list[ConfigProblem]:
    """Record the line of every key path and report duplicate keys (iterative: the graph
    check has bounded the work, aliases are followed)."""
    problems: list[ConfigProblem] = []
    stack: list[tuple[KeyPath, yaml.Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        document.lines.setdefault(path, node.start_mark.line + 1)
        document.columns.setdefault(path, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            children = list(_mapping_children(path, node, document, problems))
        elif isinstance(node, yaml.SequenceNode):
            children = [((*path, index), item) for index, item in enumerate(node.value)]
        else:
            children = []
        stack.extend(reversed(children))
    return problems


def _mapping_children(
    path: KeyPath, node: yaml.MappingNode, document: Document, problems: list[ConfigProblem]
) -> Iterator[tuple[KeyPath, yaml.Node]]:
    seen: set[str] = set()
    for key_node, value_node in node.value:
        # a mapping or list used as a key is refused when constructed; never stringify it
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
        line = key_node.start_mark.line + 1
        if key in seen:
            problems.append(
                ConfigProblem(document.filename, line, format_path((*path, key)), "duplicate key")
            )
        seen.add(key)
        document.lines[(*path, key)] = line
        document.columns[(*path, key)] = key_node.start_mark.column + 1
        yield (*path, key), value_node


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            text = text if text.isprintable() else repr(text)  # one line, no terminal escapes
            out += f".{text}" if out else text
    return out


def parse_path(text: str) -> KeyPath:
    """Inverse of ``format_path`` for dotted keys with ``[n]`` indexes."""
    parts: list[str | int] = []
    for chunk in text.split("."):
        name, _, rest = chunk.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            parts.append(int(index) if index.isascii() and index.isdigit() else index)
            rest = rest.removeprefix("[")
    return tuple(parts)
