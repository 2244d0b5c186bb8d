"""Mutants put back by hand, one at a time, each with the test file that must catch it.

Two kinds that ``scripts/mutation`` (mutmut) cannot judge:

- the six bugs issue 23 found going through the suite: each must now fail its test, except the
  progress one, which is equivalent (docs/mutation.md says why);
- code that only runs with several processes (``torch.distributed``): its tests spawn gloo
  ranks, whose calls mutmut does not attribute to any test, so it reports those mutants as
  survivors.

Each mutant is one exact text replacement in a fresh copy of the tree (the text must occur
once); the copy is imported first on PYTHONPATH, so spawned processes see it too. Each test file
must pass on the unmutated copy first. Prints one line per mutant and exits 1 if a mutant that
must be killed survived.

    .venv/bin/python scripts/mutation_by_hand.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mutation import copy_tree  # scripts/mutation.py, beside this file


@dataclass(frozen=True)
class Mutant:
    module: str
    old: str
    new: str
    tests: str
    equivalent: bool = False  # must survive: no behaviour can tell it apart


KNOWN_BUGS = [
    Mutant("sifdata/answers.py", "return stated[-1]", "return stated[0]", "tests/test_known_bugs.py"),
    Mutant(
        "sifeval/spatialbench.py", '"pair": position // 2', '"pair": (position + 1) // 2', "tests/test_known_bugs.py"
    ),
    Mutant(
        "sifmodel/rewards.py",
        "total = len(pairs) + sum(area.unreadable for area in written)",
        "total = len(pairs)",
        "tests/test_known_bugs.py",
    ),
    Mutant("sifmodel/rewards.py", "score >= previous", "score > previous", "tests/test_known_bugs.py", equivalent=True),
    Mutant(
        "sifeval/sat.py",
        'if "(highlighted by" in answer:',
        'if False and "(highlighted by" in answer:',
        "tests/test_known_bugs.py",
    ),
    Mutant(
        "sifeval/rundir.py",
        "parse_failures / len(answered) if answered",
        "parse_failures / n if answered",
        "tests/test_known_bugs.py",
    ),
]

DISTRIBUTED = "tests/test_rewards_distributed.py"
MULTI_PROCESS = [
    Mutant("sifmodel/rewards.py", "dist.get_world_size() > 1:", "dist.get_world_size() > 2:", DISTRIBUTED),
    Mutant("sifmodel/rewards.py", "= [None] * dist.get_world_size()", "= None", DISTRIBUTED),
    Mutant("sifmodel/rewards.py", "[None] * dist.get_world_size()", "[None] / dist.get_world_size()", DISTRIBUTED),
    Mutant("sifmodel/rewards.py", "all_gather_object(gathered, items)", "all_gather_object(None, items)", DISTRIBUTED),
    Mutant(
        "sifmodel/rewards.py", "all_gather_object(gathered, items)", "all_gather_object(gathered, None)", DISTRIBUTED
    ),
    Mutant("sifmodel/rewards.py", "all_gather_object(gathered, items)", "all_gather_object(items)", DISTRIBUTED),
    Mutant("sifmodel/rewards.py", "all_gather_object(gathered, items)", "all_gather_object(gathered, )", DISTRIBUTED),
    Mutant(
        "sifmodel/rewards.py", 'if len(failures) > 1 else ""', 'if (len(failures) > 1) and False else ""', DISTRIBUTED
    ),
    Mutant("sifmodel/rewards.py", "{len(failures) - 1} more", "{len(failures) + 1} more", DISTRIBUTED),
    Mutant("sifmodel/rewards.py", "{len(failures) - 1} more", "{len(failures) - 2} more", DISTRIBUTED),
    Mutant("sifmodel/rewards.py", 'if len(failures) > 1 else ""', 'if len(failures) > 2 else ""', DISTRIBUTED),
    Mutant("sifmodel/rewards.py", "totals.get(key, 0) + value", "totals.get(None, 0) + value", DISTRIBUTED),
]


def _pytest(python: str, tests: str, tree: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", tests]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)


def main() -> int:
    python = sys.executable
    wrong = 0
    with tempfile.TemporaryDirectory(prefix="sif-by-hand-") as folder:
        tree = Path(folder)
        copy_tree(tree)
        env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1")
        # A test file that fails on the clean tree would count every mutant as killed.
        for tests in sorted({mutant.tests for mutant in KNOWN_BUGS + MULTI_PROCESS}):
            if _pytest(python, tests, tree, env).returncode != 0:
                print(f"{tests} fails on the unmutated tree: make it pass first (python -m pytest {tests})")
                return 1
        for mutant in KNOWN_BUGS + MULTI_PROCESS:
            target = tree / mutant.module
            clean = target.read_text(encoding="utf-8")
            if clean.count(mutant.old) != 1:
                print(f"NOT FOUND {mutant.module}: {mutant.old!r} (the code changed: update this table)")
                wrong += 1
                continue
            target.write_text(clean.replace(mutant.old, mutant.new), encoding="utf-8")
            try:
                run = _pytest(python, mutant.tests, tree, env)
            finally:
                target.write_text(clean, encoding="utf-8")
            killed = run.returncode != 0
            verdict = "killed" if killed else ("survived (equivalent)" if mutant.equivalent else "SURVIVED")
            wrong += killed == mutant.equivalent
            print(f"{verdict:22} {mutant.module}: {mutant.old!r} -> {mutant.new!r}", flush=True)
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
