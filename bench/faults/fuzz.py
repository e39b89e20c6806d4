"""Fuzz the widget events and the HTTP endpoints of the real service with hypothesis.

    .venv/bin/python bench/faults/fuzz.py --help

The targets, the payload strategies and the properties are those of tests/test_fuzz.py
(which runs a few of them in the suite); this runs many more, prints the answers per
target and per outcome, and the database scan after the run. Payloads: operator-like keys
($where, $gt, keys with dots), huge strings, deep nesting, broken UTF-8 bytes, lone
surrogates, wrong types. Failing outcomes: any 5xx, a widget `error` answer, no answer.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from contextlib import ExitStack

from common import exit_on_sigterm, start_database, workdir

from tests.test_fuzz import TARGETS, start_harness


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--payloads", type=int, default=10_000, help="payloads in all (default 10000)"
    )
    parser.add_argument(
        "--only", choices=sorted(TARGETS), action="append", help="run only this target"
    )
    args = parser.parse_args()
    exit_on_sigterm()
    tmp = workdir("fuzz")
    names = args.only or list(TARGETS)
    total_share = sum(TARGETS[n][1] for n in names)
    with ExitStack() as stack:
        db = stack.enter_context(start_database(tmp))
        harness = start_harness(stack, tmp, db.uri, "fuzz")
        timings: dict[str, float] = {}
        for name in names:
            runner, share = TARGETS[name]
            count = max(1, round(args.payloads * share / total_share))
            began = time.monotonic()
            runner(harness, count)
            timings[name] = time.monotonic() - began
            sent = sum(harness.outcomes.values())
            print(f"{name}: {count} in {timings[name]:.0f} s ({sent} payloads so far)", flush=True)
        alive, health = harness.health()
        scan = harness.scan()

    by_target: dict[str, Counter[str]] = {}
    for (target, outcome), n in harness.outcomes.items():
        by_target.setdefault(target, Counter())[outcome] += n
    total = sum(harness.outcomes.values())
    print(f"\nfuzz: {total} payloads against the service (logs in {tmp})")
    print("-" * 100)
    for target in sorted(by_target):
        outcomes = by_target[target]
        shown = ", ".join(f"{o}: {n}" for o, n in outcomes.most_common())
        print(f"{target:<28} {sum(outcomes.values()):>6}  {shown}")
    failures = harness.failures
    print("-" * 100)
    print(f"{'failing outcomes':<28} {len(failures):>6}  {'OK' if not failures else 'FAIL'}")
    print(f"{'process alive, /healthz':<28} {str(alive) + ', ' + str(health):>6}")
    print(f"{'database scan':<28} {scan}")
    for target, outcome, payload in failures[:20]:
        print(f"  {target} -> {outcome}: {payload[:200]}")
    clean = not any(
        scan.get(k) for k in ("undecodable", "operator or dotted keys", "strings not UTF-8")
    )
    ok = not failures and alive and health == 200 and clean
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
