"""YAML that cannot silently drop a value or blow up: duplicate keys and alias bombs are located errors.

PyYAML keeps the last of two equal keys of a mapping (a recipe with two
``steps:`` runs only the second) and expands aliases without limit (a few
hundred bytes of nested ``&a [*b, *b, ...]`` anchors make billions of values
once a validator walks them). :func:`check_node` looks at the composed node
graph first, in time linear in the document's size:

- a key that occurs twice in one mapping is an error naming both lines;
- a document whose values, aliases expanded, number more than
  :data:`MAX_YAML_VALUES` is an error naming the line of the alias that
  crosses the bound.

:func:`load_yaml` is ``yaml.safe_load`` with these checks, used for every YAML
file itkit reads (recipes, prompt templates).
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_YAML_VALUES = 100_000
"""Values (scalars, lists, mappings) a YAML document may hold once its aliases are expanded."""


class YAMLProblem(ValueError):
    """A YAML document is invalid; ``line`` (1-based) is where, when known."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _key_of(node: yaml.Node) -> tuple[str, str] | None:
    return (node.tag, node.value) if isinstance(node, yaml.ScalarNode) else None


def check_node(root: yaml.Node | None, max_values: int = MAX_YAML_VALUES) -> None:
    """Raise :class:`YAMLProblem` for a duplicate mapping key or an expansion past ``max_values`` values."""
    if root is None:
        return
    sizes: dict[int, int] = {}
    # iterative post-order walk over distinct nodes: an alias is the same node object met again
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes and not done:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = list(node.value)
        if not done:
            if isinstance(node, yaml.MappingNode):
                _check_keys(node)
            sizes[key] = -1  # on the stack (a recursive alias cannot be expressed in YAML, but be safe)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        total = 1
        for child in children:
            size = sizes.get(id(child), 1)
            total += max(size, 1)
            if total > max_values:
                raise YAMLProblem(
                    f"expands to more than {max_values:,} values once its aliases (*name) are expanded; "
                    "write the values out instead of nesting aliases",
                    _line(child),
                )
        sizes[key] = total


def _check_keys(node: yaml.MappingNode) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key_node, _value in node.value:
        key = _key_of(key_node)
        if key is None:
            continue
        if key in seen:
            raise YAMLProblem(
                f"duplicate key '{key[1]}' (first at line {seen[key]}); YAML would keep only the last one: "
                "merge them or remove one",
                _line(key_node),
            )
        seen[key] = _line(key_node)


def yaml_error(exc: yaml.YAMLError, text: str) -> YAMLProblem:
    """A PyYAML parse error as a :class:`YAMLProblem` with its line."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and mark is not None and mark.index >= len(text.rstrip()):
            mark = exc.context_mark  # "got '<stream end>'": the unclosed bracket or quote is where the problem is
        problem = exc.problem or exc.context or "invalid YAML"
        return YAMLProblem(f"not valid YAML: {problem}", mark.line + 1 if mark else None)
    return YAMLProblem(f"not valid YAML: {exc}")


def compose_yaml(text: str) -> yaml.Node | None:
    """The checked node graph of one YAML document (None when empty)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, text) from None
    check_node(root)
    return root


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)`` after :func:`check_node`; raises :class:`YAMLProblem`."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise yaml_error(exc, text) from None
        check_node(root)
        if root is None:
            return None
        try:
            return loader.construct_document(root)
        except yaml.YAMLError as exc:
            raise yaml_error(exc, text) from None
    finally:
        loader.dispose()


__all__ = ["MAX_YAML_VALUES", "YAMLProblem", "check_node", "compose_yaml", "load_yaml", "yaml_error"]
