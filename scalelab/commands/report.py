"""``scalelab report [RUN...]``: regenerate the HTML report from stored run records."""

from __future__ import annotations

import argparse
from pathlib import Path

from scalelab import paths


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "report",
        help="regenerate the HTML report from stored run records (re-runs nothing)",
        description="Render reports/<run-id>/<scenario>/index.html for the given runs "
                    "(default: every run) and reports/index.html.",
    )
    parser.add_argument("runs", nargs="*", metavar="RUN",
                        help="run id under --reports-dir or path to a run folder")
    parser.add_argument("--reports-dir", type=Path, default=paths.REPORTS,
                        help="folder holding the runs (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from scalelab.errors import ConfigError
    from scalelab.report.render import INDEX, render_reports

    reports_dir: Path = args.reports_dir
    if not reports_dir.is_dir():
        raise ConfigError(f"reports folder {reports_dir} does not exist", field="--reports-dir",
                          fix="run an experiment first, or point --reports-dir at its folder")
    written = render_reports(reports_dir, runs=args.runs or None)
    pages = [p for p in written if p.name == INDEX]
    print(f"wrote {len(pages)} page(s); open {reports_dir / INDEX}")
    return 0
