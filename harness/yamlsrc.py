"""Load YAML while remembering on which line each value sits, for error messages."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]


@dataclass
class YamlSource:
    """A parsed YAML document and a map from each value's path to its 1-based line."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """The line of the deepest part of `loc` that exists in the file.

        Parts the file does not have (pydantic adds union tags such as `triton` to its paths)
        are skipped, so a path still lands on the nearest line the user wrote.
        """
        best: int | None = self.lines.get(())
        prefix: Loc = ()
        for part in loc:
            candidate = (*prefix, part)
            if candidate in self.lines:
                prefix = candidate
                best = self.lines[candidate]
        return best


def load_yaml(path: Path) -> YamlSource:
    """Parse `path`; a syntax error becomes ValueError naming the file and line."""
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 0
        raise ValueError(f"{path}:{line}: YAML syntax: {exc.problem}") from None
    source = YamlSource(path=path, data=data)
    if root is not None:
        _index(root, (), source.lines)
    return source


def _index(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _index(value_node, (*loc, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*loc, i), lines)
