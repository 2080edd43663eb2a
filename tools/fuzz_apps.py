"""Fuzz seed 002's three services' OpenAPI with schemathesis: no 5xx at all (issue 16, 3).

    .venv/bin/python tools/fuzz_apps.py [--requests 5000] [--seed 0]

The users, questions and API gateway services run for real, each its own process
(``servicegrid serve NAME``) on SQLite in a scratch folder, the gateway finding the other two
through the environment. Schemathesis generates valid and invalid requests per operation of
each service's ``/openapi.json`` until at least ``--requests`` were sent in all, shared
between the three. Any 5xx answer is a failure; so is a service that is not healthy after.

Prints a table of operation x status counts; exits 0 when all holds, 1 otherwise.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import schemathesis  # noqa: E402
from tests.support.app_processes import APPS, AppProcesses  # noqa: E402
from tools.fuzzing import Tally, fuzz, fuzz_arguments, print_table, verdict  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = fuzz_arguments(
        argv, doc=__doc__, requests=5_000, requests_help="at least this many in all"
    )

    started = time.monotonic()
    problems: list[str] = []
    tally = Tally()
    with tempfile.TemporaryDirectory() as scratch, AppProcesses(Path(scratch)) as apps:
        for index, name in enumerate(APPS):
            url = apps.url(name)
            schema = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json").json())
            wanted = (args.requests - tally.total) // (len(APPS) - index)
            prefix = f"{name} "
            fuzz(url, schema, requests_wanted=wanted, seed=args.seed, tally=tally, prefix=prefix)
        for name in APPS:
            if httpx.get(f"{apps.url(name)}/health").status_code != 200:
                problems.append(f"{name} is not healthy after the fuzzing")
            apps.processes[name].check_running()

    elapsed = time.monotonic() - started
    print_table(tally)
    print(f"\n{tally.total} generated requests in {elapsed:.0f} s")
    return verdict(tally, requests_wanted=args.requests, problems=problems)


if __name__ == "__main__":
    sys.exit(main())
