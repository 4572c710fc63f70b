"""Diagram: named blocks and the connections between their ports; subsystems; compilation
into one flat, ordered list of blocks (algebraic loops and unconnected ports found here)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from torch import nn

from deeptoolbox.errors import DiagramError, OptionError
from deeptoolbox.simulate._block import Block, Inport, Outport, check_name

__all__ = ["Diagram", "CompiledDiagram", "compile_diagram"]

Port = tuple[str, str]  # (block path, port name)


class Diagram(Block):
    """A block diagram (a Simulink model): ``add(name, block)``, then ``connect("a/out",
    "b/in2")``, the port syntax of ``Network.connect`` (``"a"`` alone: its first output;
    as a destination, its first unconnected input). A Diagram with :class:`Inport` /
    :class:`Outport` blocks is itself a block (a subsystem) with those ports.

    Example:
        >>> from deeptoolbox.simulate import Constant, Gain, Integrator, simulate
        >>> d = Diagram()
        >>> d = d.add("u", Constant(1.0)).add("k", Gain(2.0)).add("x", Integrator())
        >>> d = d.connect("u", "k").connect("k/out", "x/in")
        >>> round(simulate(d, 1.0, dt=0.1)["x/out"][0, -1, 0].item(), 6)
        2.0
    """

    def __init__(self, name: str = "diagram") -> None:
        super().__init__()
        self.name = name
        self.blocks = nn.ModuleDict()
        self.wires: dict[Port, Port] = {}  # destination -> source

    # -- ports of the diagram as a subsystem ---------------------------------------------
    @property
    def input_ports(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(n for n, b in self.blocks.items() if isinstance(b, Inport))

    @property
    def output_ports(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(n for n, b in self.blocks.items() if isinstance(b, Outport))

    @property
    def feedthrough(self) -> bool:  # type: ignore[override]
        return True  # decided block by block once flattened

    # -- editing ---------------------------------------------------------------------------
    def add(self, name: str, block: Block) -> Diagram:
        """Add ``block`` under ``name``; returns the diagram (calls chain)."""
        check_name(f"Diagram '{self.name}'", name)
        if not isinstance(block, Block):
            raise OptionError(
                f"Diagram '{self.name}': block '{name}' must be a deeptoolbox.simulate block "
                f"(Gain, Integrator, NetworkBlock...). Received: {type(block).__name__}. "
                "Hint: wrap a network in NetworkBlock(net), a function in ODEBlock(f, x0)."
            )
        if name in self.blocks:
            raise DiagramError(f"Diagram '{self.name}' already has a block named '{name}'.")
        self.blocks[name] = block
        return self

    def block(self, name: str) -> Block:
        """The block named ``name``."""
        if name not in self.blocks:
            close = difflib.get_close_matches(name, list(self.blocks), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise DiagramError(
                f"Diagram '{self.name}' has no block named '{name}'.{hint} "
                f"Blocks: {', '.join(self.blocks) or '(none)'}."
            )
        return self.blocks[name]

    def _port(self, text: str, outputs: bool) -> Port:
        if not isinstance(text, str):
            raise OptionError(f"Diagram.connect takes 'block' or 'block/port' strings. "
                              f"Received: {text!r}.")  # fmt: skip
        name, _, port = text.partition("/")
        block = self.block(name)
        ports = block.output_ports if outputs else block.input_ports
        kind = "output" if outputs else "input"
        if not port:
            free = ports if outputs else [p for p in ports if (name, p) not in self.wires]
            if not free:
                raise DiagramError(f"Diagram '{self.name}': block '{name}' has no free {kind} "
                                   f"port (its {kind}s: {list(ports)}).")  # fmt: skip
            return name, free[0]
        if port not in ports:
            raise DiagramError(
                f"Diagram '{self.name}': block '{name}' ({type(block).__name__}) has no {kind} "
                f"port '{port}'. Its {kind} ports: {', '.join(ports) or '(none)'}."
            )
        return name, port

    def connect(self, source: str, destination: str) -> Diagram:
        """Connect an output port to an input port (``"block/port"`` or ``"block"``)."""
        src = self._port(source, outputs=True)
        dst = self._port(destination, outputs=False)
        if dst in self.wires:
            raise DiagramError(
                f"Diagram '{self.name}': input '{dst[0]}/{dst[1]}' is already fed by "
                f"'{self.wires[dst][0]}/{self.wires[dst][1]}'; an input takes one signal "
                "(add a Sum block to combine signals)."
            )
        self.wires[dst] = src
        return self

    def extra_repr(self) -> str:
        wires = ", ".join(f"{s[0]}/{s[1]}->{d[0]}/{d[1]}" for d, s in self.wires.items())
        return f"name={self.name!r}, wires=[{wires}]"

    def output(self, t, state, u):  # pragma: no cover - diagrams are flattened first
        raise DiagramError("A Diagram runs through simulate(), which flattens subsystems.")


@dataclass
class CompiledDiagram:
    """A diagram flattened to leaf blocks in execution order, each input mapped to its
    source port."""

    order: list[str]
    blocks: dict[str, Block]
    sources: dict[str, dict[str, Port]] = field(default_factory=dict)
    # a subsystem's output ports ("ctrl/u", nested "plant.ctrl/u"): the leaf ports feeding them
    outputs: dict[str, Port] = field(default_factory=dict)


def _flatten(diagram: Diagram, prefix: str, blocks: dict, wires: dict) -> None:
    for name, block in diagram.blocks.items():
        if isinstance(block, Diagram):
            _flatten(block, f"{prefix}{name}.", blocks, wires)
        else:
            blocks[f"{prefix}{name}"] = block
    for (dst, dport), (src, sport) in diagram.wires.items():
        dst_block, src_block = diagram.blocks[dst], diagram.blocks[src]
        destination = (f"{prefix}{dst}.{dport}", "in") if isinstance(dst_block, Diagram) else (
            f"{prefix}{dst}", dport)  # fmt: skip
        source = (f"{prefix}{src}.{sport}", "out") if isinstance(src_block, Diagram) else (
            f"{prefix}{src}", sport)  # fmt: skip
        wires[destination] = source


def _resolve(source: Port, blocks: dict, wires: dict, where: Port) -> Port:
    seen = set()
    while isinstance(blocks.get(source[0]), Inport | Outport):
        if source in seen:
            raise DiagramError(f"Diagram: ports loop through {source[0]}.")
        seen.add(source)
        inner = (source[0], "in")
        if inner not in wires:
            kind = "subsystem input" if isinstance(blocks[source[0]], Inport) else "Outport"
            raise DiagramError(
                f"Diagram: {kind} '{source[0]}' feeding '{where[0]}/{where[1]}' is not "
                "connected. Connect it, or simulate the subsystem inside a diagram that feeds it."
            )
        source = wires[inner]
    return source


def _order(blocks: dict[str, Block], sources: dict[str, dict[str, Port]],
           diagram: str = "") -> list[str]:  # fmt: skip
    needs = {
        path: {src for src, _ in sources[path].values()} if blocks[path].feedthrough else set()
        for path in blocks
    }
    order, done = [], set()
    pending = list(blocks)
    while pending:
        ready = [p for p in pending if needs[p] <= done]
        if not ready:
            raise DiagramError(_loop_message(pending, needs, diagram))
        for path in ready:
            order.append(path)
            done.add(path)
        pending = [p for p in pending if p not in done]
    return order


def _loop_message(pending: list[str], needs: dict[str, set[str]], diagram: str) -> str:
    start = pending[0]
    path, node = [start], start
    while True:  # walk back along unmet dependencies until a block repeats
        node = next(n for n in sorted(needs[node]) if n in pending)
        if node in path:
            cycle = path[path.index(node) :]
            break
        path.append(node)
    names = " -> ".join(reversed([*cycle, cycle[0]]))
    return (
        f"Diagram '{diagram}': algebraic loop through blocks {names}: each output needs the "
        "others' "
        "outputs at the same instant. Break the loop with a block that has state (UnitDelay, "
        "Integrator, a StateSpace without feedthrough)."
    )


def compile_diagram(diagram: Diagram) -> CompiledDiagram:
    """Flatten subsystems, check every input is connected, and order the blocks so that each
    block with feedthrough runs after its sources.

    Example:
        >>> from deeptoolbox.simulate import Constant, Gain
        >>> d = Diagram().add("k", Gain(2.0)).add("c", Constant(1.0)).connect("c", "k")
        >>> compile_diagram(d).order
        ['c', 'k']
    """
    blocks: dict[str, Block] = {}
    wires: dict[Port, Port] = {}
    _flatten(diagram, "", blocks, wires)
    leaves = {p: b for p, b in blocks.items() if not isinstance(b, Inport | Outport)}
    sources: dict[str, dict[str, Port]] = {}
    missing = []
    for path, block in leaves.items():
        sources[path] = {}
        for port in block.input_ports:
            if (path, port) not in wires:
                missing.append(f"'{path}/{port}'")
                continue
            sources[path][port] = _resolve(wires[(path, port)], blocks, wires, (path, port))
    if missing:
        raise DiagramError(
            f"Diagram '{diagram.name}': unconnected input ports: {', '.join(missing)}. "
            "Connect each input, e.g. d.connect('source', 'block/in')."
        )
    if not leaves:
        raise DiagramError(f"Diagram '{diagram.name}' has no blocks. Add some with d.add().")
    outputs = {}
    for path, block in blocks.items():
        if isinstance(block, Outport) and "." in path and (path, "in") in wires:
            subsystem, port = path.rsplit(".", 1)
            outputs[f"{subsystem}/{port}"] = _resolve(wires[(path, "in")], blocks, wires,
                                                      (path, "in"))  # fmt: skip
    return CompiledDiagram(_order(leaves, sources, diagram.name), leaves, sources, outputs)
