"""YAML loading that remembers the line of every key, so config errors can name it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from recovery_cli.errors import ConfigError, ConfigProblem

KeyPath = tuple[str | int, ...]
# libyaml's parser when PyYAML was built with it: the pure-Python one costs ~25 ms a config
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Document:
    filename: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int:
        """The line of the deepest key of ``path`` present in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1


def load(text: str, filename: str) -> Document:
    try:
        loader = SAFE_LOADER(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(
            [ConfigProblem(filename, line, "", f"YAML syntax error: {exc.problem}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(filename, 1, "", f"YAML error: {exc}")]) from None
    document = Document(filename, data)
    problems: list[ConfigProblem] = []
    if node is not None:
        _index(node, (), document, problems)
    if problems:
        raise ConfigError(problems)
    return document


def _index(
    node: yaml.Node, path: KeyPath, document: Document, problems: list[ConfigProblem]
) -> None:
    document.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line = key_node.start_mark.line + 1
                problems.append(
                    ConfigProblem(
                        document.filename, line, format_path((*path, key)), "duplicate key"
                    )
                )
            seen.add(key)
            document.lines[(*path, key)] = key_node.start_mark.line + 1
            _index(value_node, (*path, key), document, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), document, problems)


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
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
            parts.append(int(index))
            rest = rest.removeprefix("[")
    return tuple(parts)
