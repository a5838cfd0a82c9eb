"""Loihi 2 fit of the network that is actually deployable: the stock-process lowering
(``lava/stock.py``, ``granularity='loihi'``), counted per graph node and per lava.proc process.

Counts come from the lowering's own plan (the matrices it builds), per sample: neuron processes by
kind (``LIF``, ``GradedVec`` relays, ``ProdNeuron``), synapse processes (``Sparse``/``DelaySparse``,
one per weight-exponent group), neurons, stored synapses (convolutions expanded: a ``Sparse``
stores every connection), graded vs binary messages, synaptic delays, and the steps each node adds.
SDSA's lowering cost (AND-coincidence and product neurons beyond the attention LIF) is broken out.
Cores use the per-core bounds of ``loihi.LIMITS`` (4096 neurons, 12000 SynMem words x 4 synapses),
estimates as marked there; chips at 120 cores.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List

from ..fileio import atomic_write
from ..graph import Graph
from ..lava import stock
from .loihi import LIMITS, synapses_per_core


@dataclass
class NodeFit:
    name: str
    op: str
    processes: Dict[str, int]          # lava.proc process kind -> count
    neurons: int
    synapses: int
    graded_synapse_processes: int      # num_message_bits 24 (the rest carry binary spikes)
    max_delay: int
    latency: int                       # steps from its latest input to its output
    extra_neurons: int = 0             # sdsa: beyond the attention LIF's own C*N
    extra_synapses: int = 0
    cores: int = 0


@dataclass
class StockReport:
    nodes: List[NodeFit]
    latency: int
    totals: Dict[str, int] = field(init=False)

    def __post_init__(self):
        cores = sum(n.cores for n in self.nodes)
        kinds = Counter()
        for n in self.nodes:
            kinds.update(n.processes)
        self.totals = {"processes": sum(kinds.values()), **{f"processes_{k}": v for k, v in sorted(kinds.items())},
                       "neurons": sum(n.neurons for n in self.nodes), "synapses": sum(n.synapses for n in self.nodes),
                       "sdsa_extra_neurons": sum(n.extra_neurons for n in self.nodes),
                       "sdsa_extra_synapses": sum(n.extra_synapses for n in self.nodes),
                       "max_delay": max(n.max_delay for n in self.nodes), "latency": self.latency,
                       "cores": cores, "chips": max(1, math.ceil(cores / LIMITS["cores_per_chip"].value))}

    @property
    def by_name(self) -> Dict[str, NodeFit]:
        return {n.name: n for n in self.nodes}

    def to_dict(self) -> dict:
        return {"totals": self.totals, "nodes": [asdict(n) for n in self.nodes]}

    def table(self) -> str:
        lines = [f"{'node':36s} {'op':6s} {'procs':>5s} {'neurons':>11s} {'synapses':>13s} {'lat':>4s} {'cores':>6s}"]
        for n in self.nodes:
            lines.append(f"{n.name:36s} {n.op:6s} {sum(n.processes.values()):5d} {n.neurons:11,d} {n.synapses:13,d} "
                         f"{n.latency:4d} {n.cores:6d}")
        t = self.totals
        lines.append(f"{'(total, per sample)':36s} {'':6s} {t['processes']:5d} {t['neurons']:11,d} {t['synapses']:13,d} "
                     f"{t['latency']:4d} {t['cores']:6d}")
        kinds = ", ".join(f"{k[len('processes_'):]} {v}" for k, v in t.items() if k.startswith("processes_"))
        lines.append(f"lava.proc processes: {kinds}; SDSA lowering adds {t['sdsa_extra_neurons']:,d} neurons and "
                     f"{t['sdsa_extra_synapses']:,d} synapses; max synaptic delay {t['max_delay']}; "
                     f"{t['cores']:,d} cores (estimate) = {t['chips']} chip(s) of {LIMITS['cores_per_chip'].value}")
        return "\n".join(lines)

    def save(self, out_dir) -> List[Path]:
        path = Path(out_dir) / "loihi_stock.json"
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(self.to_dict(), indent=2)))
        text = Path(out_dir) / "loihi_stock.txt"
        atomic_write(text, lambda tmp: Path(tmp).write_text(self.table() + "\n"))
        return [path, text]


def stock_report(graph: Graph) -> StockReport:
    """Count the stock-process lowering of ``graph`` (builds its plan: seconds and GBs for small28)."""
    plan = stock.lower(graph)
    costs, nodes = stock.cost(graph, plan), []
    for node in graph.nodes:
        c = costs[node.name]
        fit = NodeFit(node.name, node.op, c["processes"], c["neurons"], c["synapses"], c["graded_synapse_processes"],
                      c["max_delay"], c["latency"], c.get("extra_neurons", 0), c.get("extra_synapses", 0))
        if fit.neurons or fit.synapses:
            fit.cores = max(1, math.ceil(fit.neurons / LIMITS["neurons_per_core"].value),
                            math.ceil(fit.synapses / synapses_per_core()))
        nodes.append(fit)
    return StockReport(nodes, plan.latency)
