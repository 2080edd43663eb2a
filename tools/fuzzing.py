"""The schemathesis loop the fuzz tools share: generate per operation, tally the answers.

    tally = fuzz(url, schema, requests_wanted=5000, seed=0, headers={...}, allowed=...)
    print_table(tally)

Every operation is fuzzed with valid and invalid requests, round by round, until
``requests_wanted`` were sent; a 5xx answer is a failure unless ``allowed(operation,
status)`` says otherwise.
"""

from __future__ import annotations

import argparse
import logging
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import requests
from hypothesis import HealthCheck
from hypothesis.errors import HypothesisException
from schemathesis.generation import GenerationMode

__all__ = ["Allowed", "Tally", "fuzz", "fuzz_arguments", "print_table", "verdict"]

REQUEST_TIMEOUT = 60.0  # seconds per generated request

Allowed = Callable[[str, int], bool]
"""Whether a 5xx ``status`` answered by ``operation`` is expected (a stopped upstream's)."""


def fuzz_arguments(
    argv: list[str] | None, *, doc: str | None, requests: int, requests_help: str
) -> argparse.Namespace:
    """A fuzz tool's ``--requests`` (default ``requests``) and ``--seed`` from ``argv``, its
    description the first line of ``doc``; logs quietened to errors and hypothesis's
    deprecation warnings off, so only the tool's own report is printed."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--requests", type=int, default=requests, help=requests_help)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", category=hypothesis.errors.HypothesisDeprecationWarning)
    return args


def _never(operation: str, status: int) -> bool:
    return False


@dataclass
class Tally:
    """Answers per operation and status, and the answers that break the contract."""

    allowed: Allowed = _never
    counts: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(sum(counter.values()) for counter in self.counts.values())

    def sent(self, operation: str) -> int:
        return sum(self.counts[operation].values())

    def add(self, operation: str, case: Any, response: requests.Response) -> None:
        status = response.status_code
        self.counts[operation][status] += 1
        if status < 500 or self.allowed(operation, status):
            return
        if len(self.failures) < 20:
            body = response.text[:300].replace("\n", " ")
            self.failures.append(f"{operation} -> {status}: {body}\n    {case.as_curl_command()}")


def fuzz_operation(
    operation: Any,
    *,
    mode: GenerationMode,
    examples: int,
    url: str,
    session: requests.Session,
    tally: Tally,
    seed: int,
    headers: Mapping[str, str],
    label: str,
) -> None:
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        verbosity=hypothesis.Verbosity.quiet,
    )
    @hypothesis.seed(seed)
    def run(case: Any) -> None:
        try:
            response = case.call(
                base_url=url, session=session, headers=dict(headers), timeout=REQUEST_TIMEOUT
            )
        except requests.RequestException as error:
            tally.errors.append(f"{label}: {type(error).__name__}: {error}")
            return
        tally.add(label, case, response)

    try:
        run()
    except HypothesisException as error:  # e.g. no invalid request exists for the operation
        if mode is GenerationMode.POSITIVE:
            tally.errors.append(f"{label} ({mode.value}): {type(error).__name__}: {error}")


def fuzz(
    url: str,
    schema: Any,
    *,
    requests_wanted: int,
    seed: int,
    headers: Mapping[str, str] | None = None,
    tally: Tally | None = None,
    prefix: str = "",
) -> Tally:
    """Generate requests per operation, round by round, until ``requests_wanted`` were sent.

    An operation that yields fewer requests than asked (its input space is small) is left out
    of later rounds; the rest share what is still wanted. Operations are labelled
    ``prefix + "GET /path"`` in the tally (several services may share one).
    """
    tally = tally or Tally()
    start = tally.total
    operations = [result.ok() for result in schema.get_all_operations()]
    open_ops = {(op.label, mode): op for op in operations for mode in GenerationMode}
    with requests.Session() as session:
        for round_number in range(50):
            missing = requests_wanted - (tally.total - start)
            if missing <= 0 or not open_ops:
                break
            share = max(1, math.ceil(missing / len(open_ops)))
            for (label, mode), operation in list(open_ops.items()):
                before = tally.sent(prefix + label)
                fuzz_operation(
                    operation,
                    mode=mode,
                    examples=share,
                    url=url,
                    session=session,
                    tally=tally,
                    seed=seed * 1_000 + round_number,
                    headers=headers or {},
                    label=prefix + label,
                )
                if tally.sent(prefix + label) - before < share // 2:
                    del open_ops[label, mode]
    return tally


def print_table(tally: Tally) -> None:
    statuses = sorted({status for counter in tally.counts.values() for status in counter})
    width = max(len(label) for label in tally.counts) + 2
    print(f"{'operation':<{width}}" + "".join(f"{status:>7}" for status in statuses) + "  total")
    for label in sorted(tally.counts):
        counter = tally.counts[label]
        cells = "".join(f"{counter[status] or '':>7}" for status in statuses)
        print(f"{label:<{width}}{cells}{sum(counter.values()):>7}")
    totals = "".join(
        f"{sum(counter[status] for counter in tally.counts.values()):>7}" for status in statuses
    )
    print(f"{'total':<{width}}{totals}{tally.total:>7}")


def verdict(tally: Tally, *, requests_wanted: int, problems: list[str]) -> int:
    """Print every problem (``problems``, too few requests, 5xx, no answer), then ``OK`` or
    ``FAILED``; the exit status (0: all held)."""
    problems = list(problems)
    if tally.total < requests_wanted:
        problems.append(f"only {tally.total} requests generated, wanted {requests_wanted}")
    problems += [f"5xx: {failure}" for failure in tally.failures]
    problems += [f"no answer: {error}" for error in tally.errors[:20]]
    for problem in problems:
        print(f"FAIL {problem}")
    print("FAILED" if problems else "OK")
    return 1 if problems else 0
