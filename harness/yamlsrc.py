"""Load YAML while remembering on which line each value sits, for error messages.

A scenario file is input from anywhere (a customer's report, a colleague's branch), so the loader
is bounded before anything trusts it: the file's size, the nesting depth (checked on the event
stream, which PyYAML produces without recursion, before the recursive composer sees it) and the
number of values once aliases are expanded (an alias bomb is a few lines that expand to billions
of values: every later walk, pydantic's included, would expand them). A key given twice and a
non-finite number are refused here too, since the constructed data no longer shows either.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]

MAX_FILE_BYTES = 1 << 20  # 1 MiB: the largest scenario in the project is under 5 kB
MAX_DEPTH = 24  # nested mappings and lists; a scenario needs about 6
MAX_VALUES = 50_000  # values after alias expansion; a large scenario has a few hundred

_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_TAG = "tag:yaml.org,2002:int"
MAX_NUMBER_CHARS = 40  # Python refuses to read integers of over 4,300 digits, with a traceback
_MERGE_TAG = "tag:yaml.org,2002:merge"


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


class YamlRefused(ValueError):
    """The file is not YAML the harness will read; the message is `file:line: what: why`."""


def load_yaml(path: Path) -> YamlSource:
    """Parse `path` within the bounds above; any problem is YamlRefused naming file and line."""
    text = _read_text(path)
    try:
        _check_depth(path, text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        lines: dict[Loc, int] = {}
        if root is not None:
            _check_expansion(path, root)
            _index(path, root, (), lines)  # before constructing: it refuses what construction loses
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlRefused(f"{path}:{line}: YAML syntax: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:  # e.g. a reader error: a control character in the text
        raise YamlRefused(f"{path}:1: YAML syntax: {str(exc).splitlines()[0]}") from None
    return YamlSource(path=path, data=data, lines=lines)


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise YamlRefused(f"{path}:1: file: {size:,} bytes; a scenario is at most {MAX_FILE_BYTES:,}")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise YamlRefused(f"{path}:{line}: file: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise YamlRefused(f"{path}:1: file: cannot read it: {exc.strerror or exc}") from None


def _check_depth(path: Path, text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else 1
                raise YamlRefused(f"{path}:{line}: YAML: nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_expansion(path: Path, root: yaml.Node) -> None:
    """Count the values the document expands to, each shared node once per use, without expanding."""
    sizes: dict[int, int] = {}
    # Children before parents, iteratively; the depth is bounded already, the sharing is not.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if not children_done and children:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(child), 1) for child in children)
        if total > MAX_VALUES:
            line = node.start_mark.line + 1
            raise YamlRefused(
                f"{path}:{line}: YAML: aliases expand to more than {MAX_VALUES:,} values (an alias bomb?)"
            )
        sizes[id(node)] = total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _index(path: Path, node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:  # `<<: *base`: keys beside it override on purpose
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                where = _dotted(loc) or "(top level)"
                raise YamlRefused(f"{path}:{line}: {where}: a key must be a plain name")
            key = key_node.value
            if key in seen:
                raise YamlRefused(
                    f"{path}:{line}: {_dotted((*loc, key))}: given twice (first on line {seen[key]}); "
                    "the second would silently win"
                )
            seen[key] = line
            lines[(*loc, key)] = line
            _index(path, value_node, (*loc, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(path, item, (*loc, i), lines)
    elif node.tag in (_FLOAT_TAG, _INT_TAG):
        where = f"{path}:{node.start_mark.line + 1}: {_dotted(loc) or '(top level)'}"
        if len(node.value) > MAX_NUMBER_CHARS:
            raise YamlRefused(f"{where}: a number of {len(node.value)} characters; nothing here needs one")
        if node.tag == _FLOAT_TAG and not _finite(node.value):
            raise YamlRefused(f"{where}: {node.value} is not a finite number")


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text.replace("_", "")))
    except ValueError:  # `.inf`, `.NaN`: YAML's own spellings, which float() does not read
        return False


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)
