"""The camera graph of a calibration: cameras are nodes, an edge counts the instants two cameras
saw the same thing (a board, a person). Pure functions of the (C, C) count matrix: which
cameras are linked, what to film to link the rest, and the best-connected tree to chain
relative poses along.
"""

from __future__ import annotations

import numpy as np


def components(shared: np.ndarray, min_shared: int = 1) -> list[list[int]]:
    """Connected groups of cameras in the graph with edges of >= min_shared views."""
    C = len(shared)
    seen, groups = set(), []
    for s in range(C):
        if s in seen:
            continue
        stack, group = [s], []
        seen.add(s)
        while stack:
            i = stack.pop()
            group.append(i)
            for j in range(C):
                if j != i and j not in seen and shared[i, j] >= min_shared:
                    seen.add(j)
                    stack.append(j)
        groups.append(sorted(group))
    return groups


def graph_messages(shared: np.ndarray, names: list[str], min_shared: int) -> list[str]:
    """Advice for each camera pair that lacks shared views."""
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if shared[i, j] < min_shared:
                out.append(
                    f"cameras {names[i]} and {names[j]} share {'no' if shared[i, j] == 0 else f'only {shared[i, j]}'} views: "
                    "film the board where both see it (the calibration links them through other cameras meanwhile)."
                )
    return out


def spanning_tree(shared: np.ndarray, root: int, min_shared: int = 1) -> list[tuple[int, int]]:
    """Maximum spanning tree from `root` (Prim): edges (parent, child) in the order added."""
    C = len(shared)
    inside = {root}
    edges: list[tuple[int, int]] = []
    while len(inside) < C:
        best = max(
            ((shared[i, j], i, j) for i in inside for j in range(C) if j not in inside and shared[i, j] >= min_shared),
            default=None,
        )
        if best is None:
            break
        _, i, j = best
        edges.append((i, j))
        inside.add(j)
    return edges
