#!/usr/bin/python3
"""The long versions of inferd's reliability tests (`make soak`).

Runs tests/integration/test_reliability.py's soak, race and valgrind tests
with long settings (the CI run of the same file uses short ones):

    50 000 predictions      -> RSS growth after warm-up < 2 MB
    200 load/unload cycles  -> RSS growth < 10 MB
    30 s of races under the ASan build (predict, load, unload, idle unload,
    /memory, /metrics, v2) -> no crash, no sanitizer report, no wrong answer
    valgrind memcheck of the daemon before libtorch is mapped

then the bad-input matrix once more against both builds.

Usage: /usr/bin/python3 tests/soak/soak.py [--predictions N] [--cycles N]
                                           [--race-seconds S] [pytest args]
Environment: INFERD_BIN, INFERD_ASAN_BIN, INFERD_MODELS as for the
integration tests (the Makefile sets them).
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--predictions", type=int, default=50000)
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--race-seconds", type=float, default=30)
    args, rest = ap.parse_known_args()
    env = dict(os.environ)
    env.setdefault("INFERD_BIN", str(ROOT / "build" / "inferd"))
    env.setdefault("INFERD_ASAN_BIN", str(ROOT / "build" / "asan" / "inferd"))
    env.setdefault("INFERD_MODELS", str(ROOT / "build" / "models"))
    env["INFERD_SOAK_PREDICTIONS"] = str(args.predictions)
    env["INFERD_SOAK_CYCLES"] = str(args.cycles)
    env["INFERD_RACE_SECONDS"] = str(args.race_seconds)
    tests = ROOT / "tests" / "integration"
    base = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"]
    runs = [base + [str(tests / "test_reliability.py"), "-k",
                    "soak or races or valgrind or under_load", *rest],
            base + [str(tests / "test_bad_input.py"), *rest]]
    rc = 0
    for cmd in runs:
        print("+", " ".join(cmd), flush=True)
        rc |= subprocess.call(cmd, env=env, cwd=ROOT)
    return rc


if __name__ == "__main__":
    sys.exit(main())
