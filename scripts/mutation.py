"""Run mutmut on one module of the scoring core at a time (see scripts/mutation).

Which tests guard which module is ``[tool.sifthinker.mutation]`` in pyproject.toml: each module
is mutated with only its own test files selected, in a fresh copy of the working tree, so that
runs of different modules never share mutmut's state. Prints, per module, the mutants killed,
survived, timed out and not covered, and the killed share; the survivors' names go to
``<dir>/<module>/survivors.txt`` (``mutmut show NAME`` in that folder shows each diff).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("sifdata", "sifmodel", "sifeval", "tests", "pyproject.toml", "README.md", "constraints.txt")


def modules() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(config["tool"]["sifthinker"]["mutation"])


def copy_tree(folder: Path) -> None:
    """The packages, tests and project files of the working tree into ``folder`` (which exists)."""
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, folder / name)


def prepare(folder: Path, module: str, tests: list[str]) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    copy_tree(folder)
    config = (folder / "pyproject.toml").read_text(encoding="utf-8")
    package = module.split("/")[0]
    section = "\n".join(
        [
            "[tool.mutmut]",
            f'source_paths = ["{package}/"]',
            f'only_mutate = ["{module}"]',
            "pytest_add_cli_args_test_selection = " + json.dumps(tests),
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]',
            'also_copy = ["sifdata/", "sifmodel/", "sifeval/", "tests/", "pyproject.toml"]',
            "",
        ]
    )
    (folder / "pyproject.toml").write_text(config + "\n" + section, encoding="utf-8")
    # A checkout of its own, so that what reads the commit (the results' versions) reads one.
    git = ["git", "-c", "user.name=mutation", "-c", "user.email=mutation@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    subprocess.run(["git", "add", "-A"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the tree under mutation"], cwd=folder, check=True)


def counts(folder: Path) -> dict[str, list[str]]:
    listed = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=folder, capture_output=True, text=True
    )
    found: dict[str, list[str]] = {}
    for line in listed.stdout.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            found.setdefault(status, []).append(name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="module paths (default: every listed module)")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    listed = modules()
    chosen = args.modules or list(listed)
    unknown = [module for module in chosen if module not in listed]
    if unknown:
        sys.exit(f"not in [tool.sifthinker.mutation]: {', '.join(unknown)} (listed: {', '.join(listed)})")
    base = Path(os.environ.get("SIF_MUTATION_DIR", "/tmp/sif-mutation"))
    summary_path = base / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    for module in chosen:
        folder = base / module.replace("/", "__")
        prepare(folder, module, listed[module])
        run = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.children)],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        found = counts(folder)
        if run.returncode != 0 and not found:
            sys.exit(f"{module}: mutmut failed: {run.stderr[-2000:]}")
        killed, survived = len(found.get("killed", [])), found.get("survived", [])
        timeout, uncovered = len(found.get("timeout", [])), len(found.get("no tests", []))
        total = sum(len(names) for names in found.values())
        share = 100.0 * (killed + timeout) / total if total else float("nan")
        (folder / "survivors.txt").write_text("".join(name + "\n" for name in survived), encoding="utf-8")
        summary[module] = {
            "mutants": total,
            "killed": killed,
            "timeout": timeout,
            "survived": len(survived),
            "no_tests": uncovered,
            "killed_share": round(share, 1),
            "tests": listed[module],
        }
        summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(
            f"{module}: {killed + timeout} of {total} killed ({share:.1f}%), {len(survived)} survived, "
            f"{uncovered} not covered; survivors in {folder / 'survivors.txt'}",
            flush=True,
        )


if __name__ == "__main__":
    main()
