"""The hidden graphs of graph-nav: random labelled digraphs with pockets, their distances, their pockets.

A graph is an array succ (n_nodes x n_labels): succ[n, l] is the node label l leads to from n.
"""

from __future__ import annotations

import numpy as np


def random_graph(n_nodes: int, n_labels: int, n_pockets: int, rng: np.random.Generator) -> np.ndarray:
    """Returns successors (n_nodes x n_labels): a strongly connected graph without self-loops, with pockets.

    Core nodes lie on a random Hamiltonian cycle, which makes the graph strongly connected; which
    label carries a node's cycle edge is random so that no label is special, and its other edges go
    to distinct core nodes where there are enough of them, so that slips change where one lands.

    A pocket is a detour: one edge of one core host leads in, and every edge out leads to one of
    the host's other successors. Going through a pocket is never better than going around it, so
    an optimal expert enters one only to reach it (or by slipping); this is what lets a split hold
    pockets out of the train experts' paths.
    """
    nodes = [int(n) for n in rng.permutation(n_nodes)]
    pockets, core = nodes[:n_pockets], nodes[n_pockets:]
    succ = np.zeros((n_nodes, n_labels), dtype=np.int64)
    cycle_label = {}
    for i, node in enumerate(core):
        nxt = core[(i + 1) % len(core)]
        others = [n for n in core if n not in (node, nxt)]
        replace = len(others) < n_labels - 1
        if replace:
            others = [n for n in core if n != node]
        targets = list(rng.choice(others, size=n_labels - 1, replace=replace))
        cycle_label[node] = int(rng.integers(n_labels))
        targets.insert(cycle_label[node], nxt)
        succ[node] = targets
    for pocket, host in zip(pockets, rng.choice(core, size=n_pockets, replace=False)):
        label = int(rng.choice([lab for lab in range(n_labels) if lab != cycle_label[host]]))
        exits = [int(n) for lab, n in enumerate(succ[host]) if lab != label]
        succ[pocket] = rng.choice(exits, size=n_labels)
        succ[host, label] = pocket
    return succ


def shortest_distances(succ: np.ndarray) -> np.ndarray:
    """Returns dist[s, g], the fewest moves from s to g without slips (n_nodes + 1 if unreachable)."""
    n = len(succ)
    adjacent = np.zeros((n, n), dtype=np.int64)
    adjacent[np.arange(n)[:, None], succ] = 1
    reached, dist = np.eye(n, dtype=np.int64), np.where(np.eye(n, dtype=bool), 0, n + 1)
    for d in range(1, n):
        reached = np.minimum(reached @ adjacent, 1)
        new = (reached > 0) & (dist > n)
        if not new.any():
            break
        dist[new] = d
    return dist


def find_pockets(succ: np.ndarray) -> tuple[int, ...]:
    """Returns the pockets: nodes with one edge in, whose edges out all reach the host's other successors."""
    found = []
    for node in range(len(succ)):
        into = np.argwhere(succ == node)
        if len(into) == 1 and into[0, 0] != node:
            host, label = into[0]
            if set(succ[node].tolist()) <= set(np.delete(succ[host], label).tolist()):
                found.append(node)
    return tuple(found)
