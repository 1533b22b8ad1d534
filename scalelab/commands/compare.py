"""``scalelab compare BASELINE CONTENDER``: per scenario and metric, what changed."""

from __future__ import annotations

import argparse
from pathlib import Path

from scalelab import paths


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "compare",
        help="compare two runs (table on stdout plus an HTML page)",
        description="Compare two runs scenario by scenario. Differences within the noise "
                    "margin are not highlighted; each metric knows which direction is better.",
    )
    parser.add_argument("baseline", metavar="BASELINE", help="run id or run folder")
    parser.add_argument("contender", metavar="CONTENDER", help="run id or run folder")
    parser.add_argument("--margin", default="5",
                        help="noise margin in percent (default: %(default)s)")
    parser.add_argument("--reports-dir", type=Path, default=paths.REPORTS,
                        help="folder holding the runs (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="HTML page to write (default: "
                             "<reports-dir>/compare-<baseline>-vs-<contender>.html)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from scalelab.comparison import compare_runs, format_table, parse_margin, render_html
    from scalelab.errors import ConfigError
    from scalelab.report.render import resolve_run

    try:
        margin = parse_margin(args.margin)
    except ValueError as err:
        raise ConfigError(f"'{args.margin}' is not a margin: {err}", field="--margin",
                          fix="give a percentage such as 5 or 2.5") from err
    base = resolve_run(args.baseline, reports_dir=args.reports_dir)
    cont = resolve_run(args.contender, reports_dir=args.reports_dir)
    comp = compare_runs(base, cont, margin=margin)
    print(format_table(comp))
    out = args.out or args.reports_dir / f"compare-{base.name}-vs-{cont.name}.html"
    render_html(comp, out, reports_dir=args.reports_dir)
    print(f"wrote {out}")
    return 0
