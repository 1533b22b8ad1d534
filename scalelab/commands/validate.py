"""``scalelab validate [PATH...]``: check scenario files without running anything.

Every file is checked on its own (so one bad file does not hide the others' errors), then
names are checked for uniqueness across files. Prints ``OK`` per good file and every error
with its file, field and fix; exit code 0 when all are good, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scalelab import paths
from scalelab.errors import ConfigError
from scalelab.scenario import load_scenario, scenario_files


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "validate", help="check scenario files (schema, manifests, expectations)",
        description="Check scenario files and folders without running anything.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help=f"scenario files or folders (default: {paths.SCENARIOS})")
    parser.add_argument("--quick", action="store_true",
                        help="skip validating the scaling manifests against the Kubernetes "
                             "and KEDA schemas")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    targets = args.paths or [paths.SCENARIOS]
    errors = 0
    try:
        files = scenario_files(targets)
    except ConfigError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    if not files:
        print(f"ERROR no scenario files (*.yaml) in {', '.join(map(str, targets))}",
              file=sys.stderr)
        return 1
    seen: dict[str, Path] = {}
    for file in files:
        try:
            sc = load_scenario(file, strict_manifests=not args.quick)
        except ConfigError as err:
            errors += 1
            print(f"ERROR {err}", file=sys.stderr)
            continue
        if sc.name in seen:
            errors += 1
            print(f"ERROR {file}: field 'name': duplicate scenario name '{sc.name}' (also in "
                  f"{seen[sc.name]})\n  fix: give every scenario a unique name",
                  file=sys.stderr)
            continue
        seen[sc.name] = file
        print(f"OK    {file}  ({sc.name}: {len(sc.phases)} phases, {sc.duration:g}s, "
              f"{len(sc.expectations)} expectations)")
    print(f"{len(files) - errors} of {len(files)} scenario files valid")
    return 1 if errors else 0
