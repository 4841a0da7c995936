"""Reading and writing pipeline YAML, with limits that hold against hostile input.

PyYAML's safe loader is used for parsing (the C one when present). Before anything is
constructed the text is checked in three cheap passes: its size, its nesting depth (from
the event stream, which is iterative, so deep nesting cannot exhaust the stack), and the
size of the node graph with every alias expanded (so an "alias bomb" of a few hundred bytes
that expands to billions of nodes is refused before it costs anything). Duplicate mapping
keys are refused rather than silently keeping the last one.
"""

from __future__ import annotations

from typing import Any

import yaml

from prefect_pipelines.translator.errors import YamlLimitError, YamlSyntaxError

try:  # the C parser is about ten times faster; the pure one behaves the same
    _Loader: type = yaml.CSafeLoader
    _Dumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader
    _Dumper = yaml.SafeDumper

DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_NODES = 50_000

_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def load_yaml(
    text: str | bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> Any:
    """Parse one YAML document within limits.

    Args:
        text: the document.
        max_bytes: the largest document accepted, in bytes.
        max_depth: the deepest nesting of mappings and sequences accepted.
        max_nodes: the most nodes accepted with every alias expanded.

    Returns:
        The plain Python value (dicts, lists, strings, numbers, booleans, None).

    Raises:
        YamlLimitError: the document is over a limit.
        YamlSyntaxError: the document does not parse, holds several documents, or
            repeats a key in a mapping.
    """
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > max_bytes:
        raise YamlLimitError(
            f"the document is {len(raw)} bytes; the limit is {max_bytes} bytes"
        )
    try:
        _check_depth(raw, max_depth)
        loader = _Loader(raw)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_nodes(node, max_nodes)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(_describe(exc)) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"not valid YAML: {exc}") from None
    except RecursionError:
        raise YamlLimitError("the document nests too deeply") from None


def dump_yaml(data: Any) -> str:
    """Write `data` as block-style YAML, keys in the order given."""
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def _check_depth(raw: bytes, max_depth: int) -> None:
    depth, line = 0, 0
    try:
        for event in yaml.parse(raw, Loader=_Loader):
            if isinstance(event, _OPEN):
                depth += 1
                if depth > max_depth:
                    line = event.start_mark.line + 1 if event.start_mark else 0
                    break
            elif isinstance(event, _CLOSE):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        # libyaml 0.2.5 has a nesting limit of its own (1000), reached while it scans
        # ahead for a possible simple key, before any event reaches us: the same refusal.
        if "nesting depth" not in (exc.problem or ""):
            raise
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
    else:
        if depth <= max_depth:
            return
    raise YamlLimitError(f"the document nests deeper than {max_depth} levels (line {line})")


def _check_nodes(root: yaml.Node, max_nodes: int) -> None:
    """Count nodes with aliases expanded, refuse recursion and duplicate keys."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    # Iterative post-order walk: (node, children_done)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if done:
            in_progress.discard(key)
            total = 1 + sum(sizes[id(child)] for child in children)
            if total > max_nodes:
                raise YamlLimitError(
                    f"the document expands to more than {max_nodes} nodes "
                    "(aliases counted each time they are used)"
                )
            sizes[key] = total
            continue
        if key in in_progress:
            raise YamlLimitError("the document has a recursive alias")
        in_progress.add(key)
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node)
        stack.append((node, True))
        for child in children:
            if id(child) in in_progress:
                raise YamlLimitError("the document has a recursive alias")
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_duplicate_keys(node: yaml.MappingNode) -> None:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        if key_node.value in seen:
            line = key_node.start_mark.line + 1 if key_node.start_mark else 0
            raise YamlSyntaxError(f"key {key_node.value!r} appears twice in a mapping (line {line})")
        seen.add(key_node.value)


def _describe(exc: yaml.MarkedYAMLError) -> str:
    where = ""
    if exc.problem_mark is not None:
        where = f" (line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})"
    problem = exc.problem or exc.context or "invalid YAML"
    return f"not valid YAML: {problem}{where}"
