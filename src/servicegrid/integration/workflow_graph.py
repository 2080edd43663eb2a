"""The shape checks a workflow's steps must pass before it is stored.

Step ids are unique; every ``next``, switch case and fork branch names a step; there is no cycle;
every step is reachable. Steps form *regions*: the main path from the first step, and one per
fork branch. Regions never share a step, so a branch cannot run into the main path or into
another branch, and a fork's ``next`` runs exactly once, after all its branches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from servicegrid.integration.workflow_models import Step

__all__ = ["GraphProblem", "StepGraph", "check_graph"]


@dataclass(frozen=True, slots=True)
class GraphProblem:
    """One thing wrong with the steps; ``loc`` is the field's path inside the request body."""

    loc: tuple[str | int, ...]
    msg: str


class StepGraph:
    """The steps of one workflow, by id, with the first step as the entry."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.by_id = {step.id: step for step in self.steps}
        self.entry = self.steps[0].id

    def region(self, start: str) -> list[str]:
        """The steps reachable from ``start`` through ``next`` (branches not included)."""
        seen: list[str] = []
        pending = [start]
        while pending:
            current = pending.pop()
            if current in seen or current not in self.by_id:
                continue
            seen.append(current)
            pending.extend(reversed(self.by_id[current].targets()))
        return seen


def check_graph(steps: Sequence[Step]) -> list[GraphProblem]:
    """Every problem with the shape of ``steps``; empty when it can run."""
    problems = _duplicates(steps)
    if problems:
        return problems
    graph = StepGraph(steps)
    problems = _dangling(graph)
    if problems:
        return problems
    problems = _cycles(graph)
    if problems:
        return problems
    return _regions(graph)


def _loc(index: int, *rest: str | int) -> tuple[str | int, ...]:
    return ("steps", index, *rest)


def _duplicates(steps: Sequence[Step]) -> list[GraphProblem]:
    seen: set[str] = set()
    problems = []
    for index, step in enumerate(steps):
        if step.id in seen:
            problems.append(GraphProblem(_loc(index, "id"), f"step id {step.id!r} is repeated"))
        seen.add(step.id)
    return problems


def _dangling(graph: StepGraph) -> list[GraphProblem]:
    problems = []
    for index, step in enumerate(graph.steps):
        references: list[tuple[tuple[str | int, ...], str]] = []
        if isinstance(step.next, str):
            references.append((_loc(index, "next"), step.next))
        elif step.next is not None:
            for case, target in step.next.cases.items():
                if target is not None:
                    references.append((_loc(index, "next", "cases", case), target))
            if step.next.default is not None:
                references.append((_loc(index, "next", "default"), step.next.default))
        for branch, target in enumerate(step.fork or []):
            references.append((_loc(index, "fork", branch), target))
        for loc, target in references:
            if target not in graph.by_id:
                problems.append(GraphProblem(loc, f"no step has the id {target!r}"))
            elif target == graph.entry:
                problems.append(
                    GraphProblem(loc, f"{target!r} is the first step; nothing may lead back to it")
                )
    return problems


def _edges(step: Step) -> list[str]:
    return [*step.targets(), *(step.fork or [])]


def _cycles(graph: StepGraph) -> list[GraphProblem]:
    index_of = {step.id: index for index, step in enumerate(graph.steps)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph.by_id:
        if state.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(_edges(graph.by_id[root]))]
        state[root] = 1
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(target) == 1:
                loop = [*path[path.index(target) :], target]
                where = _loc(index_of[path[-1]], "next")
                return [GraphProblem(where, f"steps form a cycle: {' -> '.join(loop)}")]
            if not state.get(target):
                state[target] = 1
                path.append(target)
                stack.append(iter(_edges(graph.by_id[target])))
    return []


def _regions(graph: StepGraph) -> list[GraphProblem]:
    index_of = {step.id: index for index, step in enumerate(graph.steps)}
    owner: dict[str, str] = {}
    problems: list[GraphProblem] = []
    pending: list[tuple[str, str]] = [(graph.entry, "the main path")]
    while pending:
        start, name = pending.pop(0)
        for step_id in graph.region(start):
            if step_id in owner:
                problems.append(
                    GraphProblem(
                        _loc(index_of[step_id], "id"),
                        f"step {step_id!r} is on both {owner[step_id]} and {name}; "
                        "a branch must end (next: null) before its fork's next step",
                    )
                )
                continue
            owner[step_id] = name
            for branch in graph.by_id[step_id].fork or []:
                pending.append((branch, f"the branch {branch!r} of fork {step_id!r}"))
    for step in graph.steps:
        if step.id not in owner:
            problems.append(
                GraphProblem(
                    _loc(index_of[step.id], "id"),
                    f"step {step.id!r} cannot be reached from the first step",
                )
            )
    return problems
