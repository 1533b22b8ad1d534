"""``scalelab report [RUN...]``: regenerate the HTML report from stored run records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scalelab import paths


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "report",
        help="regenerate the HTML report from stored run records (re-runs nothing)",
        description="Render reports/<run-id>/<scenario>/index.html for the given runs "
                    "(default: every run) and reports/index.html. A stored record that "
                    "cannot be read (another record schema version, a damaged file) is "
                    "named with the reason and left out; the rest is rendered and the exit "
                    "code is 1.",
    )
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="run id under --reports-dir or path to a run folder")
    parser.add_argument("--reports-dir", type=Path, default=paths.REPORTS,
                        help="folder holding the runs (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0, or 1 when a stored record could not be read (named on stderr and on the
    index, with the reason; the other runs are rendered all the same)."""
    from scalelab.errors import ConfigError
    from scalelab.report.render import INDEX, Skipped, render_reports

    reports_dir: Path = args.reports_dir
    if not reports_dir.is_dir():
        raise ConfigError(f"reports folder {reports_dir} does not exist", field="--reports-dir",
                          fix="run an experiment first, or point --reports-dir at its folder")
    skipped: list[Skipped] = []
    written = render_reports(reports_dir, runs=args.runs or None, skipped=skipped)
    pages = [p for p in written if p.name == INDEX]
    print(f"wrote {len(pages)} page(s); open {reports_dir / INDEX}")
    for s in skipped:
        print(f"scalelab report: skipped {s.path}: {s.reason}", file=sys.stderr)
    if skipped:
        print(f"scalelab report: {len(skipped)} record{'s' if len(skipped) > 1 else ''} could "
              "not be read (left out of the report, listed on its index)", file=sys.stderr)
    return 1 if skipped else 0
