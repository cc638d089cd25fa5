"""Soak: N lifecycles per mode through iron (and optionally podman); latency percentiles and leaks.

    python bench/soak.py [--count 500] [--window 100] [--engine direct|podman] [--full]

Prints, per mode, p50/p95/p99 over all lifecycles and per window of --window lifecycles
(growth over time shows as rising windows), then the count of leaked host resources.
--full runs create/start/exec/kill/delete instead of an attached `run`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.load.harness import MODES, Run, open_fds  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def row(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"{label:<22} {len(ms):>5} {percentile(ms, 50):>8.1f} {percentile(ms, 95):>8.1f} "
            f"{percentile(ms, 99):>8.1f} {max(ms):>8.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--engine", choices=("direct", "podman"), default="direct")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--modes", default=",".join(MODES))
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iron-soak-") as work:
        run = Run(Path(work))
        fds_before = open_fds()
        times: dict[str, list[float]] = {}
        try:
            for mode in opts.modes.split(","):
                if opts.engine == "podman":
                    one = lambda m=mode: run.podman_run(m, exec_too=opts.full)  # noqa: E731
                else:
                    one = (lambda m=mode: run.direct_full(m)) if opts.full else (lambda m=mode: run.direct_run(m))
                times[mode] = [one() for _ in range(opts.count)]
            what = "create/start/exec/kill/delete" if opts.full else "run (attached, exit 0)"
            print(f"engine={opts.engine} lifecycle={what} count={opts.count}/mode  (ms)")
            print(f"{'mode / window':<22} {'n':>5} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
            for mode, values in times.items():
                print(row(mode, values))
                for start in range(0, len(values), opts.window):
                    print(row(f"  {start + 1}-{start + len(values[start:start + opts.window])}",
                              values[start:start + opts.window]))
            leaks = run.leaks()
            leaks["engine_fds"] = ["fd"] * max(0, open_fds() - fds_before)
            records = run.audit_records()
            expected = len(run.ids) * (2 if opts.full else 1)
            print("leaks: " + ", ".join(f"{k}={len(v)}" for k, v in leaks.items()))
            print(f"audit records: {len(records)} (expected {expected})")
            return 0 if not any(leaks.values()) and len(records) == expected else 1
        finally:
            run.cleanup()


if __name__ == "__main__":
    sys.exit(main())
