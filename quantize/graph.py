"""ONNX graph helpers shared by the INT8 and FP16 converters: the head scope and the spec metadata."""

from __future__ import annotations

from collections import deque

import onnx

from edgedepth.artifact import ModelSpec


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
