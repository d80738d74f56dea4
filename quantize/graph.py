"""ONNX graph helpers shared by the INT8 and FP16 converters: the head scope and the spec metadata."""

from __future__ import annotations

import difflib
import re
from collections import deque

import onnx

from edgedepth.artifact import ModelSpec
from edgedepth.errors import InputError


def head_scope(model: onnx.ModelProto) -> list[str]:
    """Names of the density head's last convolution(s) and every node after them (the readout).

    Found from the graph, not from exporter-specific names: walking back from the outputs, the first Conv on
    each path is a head conv; the scope is those convs plus everything downstream of them. Reduced precision
    there costs accuracy (the readout compares mixture logits) and saves almost no time.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    heads: dict[int, onnx.NodeProto] = {}
    seen: set[int] = set()
    queue = deque(producer[o.name] for o in graph.output if o.name in producer)
    while queue:
        node = queue.popleft()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type == "Conv":
            heads[id(node)] = node
            continue
        queue.extend(producer[i] for i in node.input if i in producer)
    scope: dict[int, onnx.NodeProto] = {}
    queue = deque(heads.values())
    while queue:
        node = queue.popleft()
        if id(node) in scope:
            continue
        scope[id(node)] = node
        for out in node.output:
            queue.extend(consumers.get(out, []))
    order = {id(n): i for i, n in enumerate(graph.node)}
    return [n.name for n in sorted(scope.values(), key=lambda n: order[id(n)]) if n.name]


def resolve_nodes(model: onnx.ModelProto, names: tuple[str, ...] | list[str]) -> list[str]:
    """Node names for ``names``, each a node's name or a layer's (a parameter such as
    ``model.encoder.blocks.0._depthwise_conv.weight``, or its module ``model.encoder.blocks.0._depthwise_conv``):
    a layer stands for the nodes that read its parameters. Exporters name nodes by counters
    (``node_Conv_912``) that change from one export to the next; parameter names follow the model's code.
    A name that matches nothing raises InputError with the closest node and layer names."""
    nodes = [n for n in model.graph.node if n.name]
    node_names = {n.name for n in nodes}
    params = {i.name for i in model.graph.initializer}
    readers: dict[str, list[str]] = {}
    for node in nodes:
        for name in node.input:
            if name in params:
                readers.setdefault(name, []).append(node.name)
                module = name.rsplit(".", 1)[0]
                if module != name:
                    readers.setdefault(module, []).append(node.name)
    resolved: list[str] = []
    for name in names:
        found = [name] if name in node_names else readers.get(name, [])
        if not found:
            close = difflib.get_close_matches(name, [*node_names, *readers], n=5, cutoff=0.6)
            raise InputError(
                f"--ignore {name!r} names no node or layer of the model"
                + (f"; close: {', '.join(close)}" if close else "")
                + " (layer names are the model's parameter names without .weight or .bias)"
            )
        resolved += [n for n in dict.fromkeys(found) if n not in resolved]
    return resolved


def check_patterns(model: onnx.ModelProto, patterns: tuple[str, ...] | list[str]) -> None:
    """Refuse a node-name pattern that is not a regex, or that matches no node (it would keep nothing); as
    in NNCF, a pattern matches from the start of a name."""
    node_names = [n.name for n in model.graph.node if n.name]
    for pattern in patterns:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise InputError(f"--ignore-pattern {pattern!r} is not a regular expression: {exc}") from exc
        if not any(regex.match(n) for n in node_names):
            raise InputError(f"--ignore-pattern {pattern!r} matches no node name of the model")


def set_spec(model: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """Replace the model's ``edgedepth.*`` metadata with ``spec`` (other metadata is kept)."""
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith("edgedepth.")]
    del model.metadata_props[:]
    for key, value in [*kept, *spec.to_metadata().items()]:
        model.metadata_props.add(key=key, value=value)
    return model


def topological_sort(model: onnx.ModelProto) -> None:
    """Reorder the main graph's nodes so that each comes after its inputs' producers (converters append
    nodes at the end; ONNX Runtime sorts for itself, but ``onnx.checker`` and other tools require order)."""
    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError(f"graph has a cycle or a missing input near node {pending[0].name!r}")
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
        ordered += ready
        available.update(o for n in ready for o in n.output)
    del graph.node[:]
    graph.node.extend(ordered)
