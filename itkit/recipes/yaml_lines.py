"""YAML loading that remembers where every value stood, so errors can name the recipe's line."""

from __future__ import annotations

from typing import Any

import yaml

from itkit.yaml_guard import compose_yaml


class _Node:
    __slots__ = ("line", "children", "key_line")

    def __init__(self, line: int, children: dict | list | None = None):
        self.line = line
        self.children = children
        self.key_line = line
        """For a mapping's value: the line of its key (a block mapping or list value starts on the next line)."""


def _walk(node: yaml.Node) -> tuple[Any, _Node]:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        value: dict = {}
        children: dict = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(key_node, yaml.ScalarNode) else key_node.value
            v, n = _walk(value_node)
            n.key_line = key_node.start_mark.line + 1
            value[key] = v
            children[key] = n
        return value, _Node(line, children)
    if isinstance(node, yaml.SequenceNode):
        items = [_walk(child) for child in node.value]
        return [v for v, _ in items], _Node(line, [n for _, n in items])
    return yaml.safe_load(yaml.serialize(node)), _Node(line)


class LocatedYAML:
    """A parsed YAML document plus the line of every value in it."""

    def __init__(self, text: str):
        """Raises :class:`~itkit.yaml_guard.YAMLProblem` for invalid YAML, a duplicate key or an alias bomb."""
        root = compose_yaml(text)
        if root is None:
            self.data: Any = None
            self._root = _Node(1)
        else:
            self.data, self._root = _walk(root)

    def line_of(self, path: tuple) -> int:
        """The line of the deepest value on ``path`` that exists (1 when none)."""
        node = self._root
        for part in path:
            children = node.children
            if isinstance(children, dict) and part in children:
                node = children[part]
            elif isinstance(children, list) and isinstance(part, int) and 0 <= part < len(children):
                node = children[part]
            else:
                break
        return node.line

    def key_line_of(self, path: tuple) -> int:
        """Like :meth:`line_of`, but the line of the key for a mapping's value (``export:`` rather than its first option)."""
        node = self._root
        for part in path:
            children = node.children
            if isinstance(children, dict) and part in children:
                node = children[part]
            elif isinstance(children, list) and isinstance(part, int) and 0 <= part < len(children):
                node = children[part]
            else:
                break
        return node.key_line
