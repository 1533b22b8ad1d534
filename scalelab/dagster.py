"""The experiments as Dagster assets: ``dagster dev -m scalelab.dagster`` (extra ``dagster``).

pytest is how a developer runs the scenarios; Dagster is how a team schedules them and
follows every run's verdicts and figures over time. There is no second code path: a
scenario asset calls ``scalelab.experiment.run_scenario`` exactly as
``experiments/test_scaling.py`` does, on a stack brought up with the same functions as the
pytest driver (``choose_backend``, ``preflight.check_backend``, ``make_backend``, a
``deadline`` around ``up()``), and writes the same ``reports/<run-id>/<scenario>/run.json``.

What ``defs`` holds (``docs/dagster.md`` is the reference):

- one asset per scenario file, key ``scenario/<name>``, group = the scenario's first tag
  (``hpa``, ``keda``), with an asset check ``no_task_lost`` (the ``no_task_loss``
  expectation's own check, run on the record's task accounting);
- ``scalelab/report`` (renders ``reports/index.html``) and ``scalelab/comparison`` (this
  run against the previous one, ``scalelab compare``'s logic and noise margin);
- the resource ``scalelab`` (``ScalelabStack``): the stack, brought up at the first scenario
  of a run and torn down when the run ends, also when a step fails or the run is cancelled;
- the job ``all_scenarios`` and the schedule ``nightly_scenarios`` (stopped by default);
  the job ``report_and_comparison`` and the sensor ``report_after_failed_scenarios``
  (stopped by default), which runs it after a failed ``all_scenarios`` run, since Dagster
  skips the assets downstream of a failed scenario.

Scenarios come from ``experiments/scenarios/`` or ``SCALELAB_SCENARIOS`` (comma-separated
files or folders, relative to the working directory: pytest's ``--scenarios`` rule), and are
checked when the definitions load: a bad file fails the load with ``scalelab validate``'s
file / field / fix message.

Runs use the in-process executor: the scenarios share one stack (one agent Deployment, one
queue), so they run one at a time in the process that owns the stack.

The imports are absolute: inside this module ``dagster`` is the Dagster package, not us.
No ``from __future__ import annotations``: Dagster reads the assets' parameter annotations
(the context, the resource, the config) as objects.
"""

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from scalelab import preflight, record
from scalelab.backends import (
    BRING_UP_TIMEOUT_ENV,
    bring_up_timeout,
    choose_backend,
    make_backend,
)
from scalelab.backends.base import Backend
from scalelab.comparison import (
    DEFAULT_MARGIN,
    all_passed,
    compare_runs,
    format_table,
    parse_margin,
    render_html,
)
from scalelab.credentials import redact
from scalelab.errors import ConfigError, ScalelabError
from scalelab.expectations import Expectation, evaluate_one
from scalelab.experiment import ExperimentSettings, explain, run_scenario
from scalelab.figures import format_figures, scenario_figures
from scalelab.paths import REPORTS, ROOT, SCENARIOS
from scalelab.report.render import INDEX, Skipped, render_index, render_reports, render_scenario
from scalelab.report.summary import summarize
from scalelab.scenario import Scenario, load_scenarios, scenario_files
from scalelab.settings import StackSettings
from scalelab.signals import interrupt_on
from scalelab.waiting import deadline

#: Environment variables read when the definitions load (docs/dagster.md).
SCENARIOS_ENV = "SCALELAB_SCENARIOS"
BACKEND_ENV = "SCALELAB_BACKEND"
REPORT_DIR_ENV = "SCALELAB_REPORT_DIR"

RESOURCE_KEY = "scalelab"
REPORT_KEY = dg.AssetKey(["scalelab", "report"])
COMPARISON_KEY = dg.AssetKey(["scalelab", "comparison"])
NO_TASK_LOST = "no_task_lost"
NO_REGRESSION = "no_regression"
UNTAGGED = "untagged"


# -- scenarios -----------------------------------------------------------------------------


def scenario_paths(env: Mapping[str, str] = os.environ, *, cwd: Path | None = None
                   ) -> list[Path]:
    """pytest's ``--scenarios`` rule: comma-separated files or folders, relative to the
    working directory; none given: the shipped ``experiments/scenarios/``."""
    raw = env.get(SCENARIOS_ENV, "")
    if not raw:
        return [SCENARIOS]
    base = Path.cwd() if cwd is None else cwd
    return [Path(p) if Path(p).is_absolute() else base / p for p in raw.split(",") if p]


def load(paths: Sequence[Path]) -> list[Scenario]:
    """The scenarios, checked as pytest and ``scalelab validate`` check them: the first bad
    file is a ``ConfigError`` naming the file, the field and the fix; no file at all too."""
    if not scenario_files(paths):
        raise ConfigError(f"no scenario files (*.yaml) in {', '.join(map(str, paths))}",
                          field=SCENARIOS_ENV,
                          fix="point it at scenario files or folders, or unset it for "
                              "experiments/scenarios/")
    return load_scenarios(paths)


def _name(text: str) -> str:
    """A tag as a Dagster group name (letters, digits, underscores)."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in text)


def scenario_key(scenario: Scenario) -> dg.AssetKey:
    return dg.AssetKey(["scenario", scenario.name])


def scenario_group(scenario: Scenario) -> str:
    """The scenario's first tag (``hpa``, ``keda``): its group in the asset graph."""
    return _name(scenario.tags[0]) if scenario.tags else UNTAGGED


# -- the stack, one per Dagster run ----------------------------------------------------------




@dataclass(kw_only=True)
class StackSession:
    """One Dagster run's stack and run folder: the stack comes up at the first scenario
    that asks for it (a run of the report alone starts nothing) and goes down in ``close``.

    The steps follow the pytest driver's (``experiments/conftest.py``): resolve the backend,
    its preflight, ``SCALELAB_RUN_ID`` for a cluster's run namespace, ``up()`` under the
    bring-up bound; a bring-up that failed fails every later scenario with the same error.
    """

    backend_name: str
    report_dir: Path
    run_id: str
    say: Callable[[str], None]
    env: MutableMapping[str, str] = field(default_factory=lambda: os.environ)
    backend: Backend | None = None
    error: BaseException | None = None
    _restore: list[Callable[[], object]] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.report_dir / self.run_id

    def stack(self) -> Backend:
        """The stack, brought up on the first call; its bring-up error on later ones."""
        if self.error is not None:
            raise self.error
        if self.backend is None:
            try:
                self._bring_up()
            except BaseException as err:
                self.error = err
                raise
        assert self.backend is not None
        return self.backend

    def _bring_up(self) -> None:
        choice = choose_backend(self.backend_name)
        preflight.check_backend(choice.name)
        self.say(f"scalelab: backend {choice.name.upper()} ({choice.reason})")
        if "SCALELAB_RUN_ID" not in self.env:
            self.env["SCALELAB_RUN_ID"] = self.run_id
            self._restore.append(lambda: self.env.pop("SCALELAB_RUN_ID", None))
        backend = self.backend = make_backend(choice.name, settings=StackSettings())
        limit = bring_up_timeout(backend, self.env)
        started = time.monotonic()
        self.say(f"scalelab: bringing the stack up (at most {limit:.0f}s, "
                 f"{BRING_UP_TIMEOUT_ENV})")
        with deadline(limit, what=f"the {backend.name} stack to come up", expected="up",
                      actual=lambda: f"still at step {backend.current_step}",
                      fix="see the log above; raise SCALELAB_BRING_UP_TIMEOUT for a slow "
                          "first pull"):
            backend.up()
        steps = ", ".join(f"{k} {v:.1f}s" for k, v in backend.timings.items())
        self.say(f"scalelab: stack up in {time.monotonic() - started:.1f}s"
                 + (f" ({steps})" if steps else "") + ": "
                 + ", ".join(f"{k}={redact(v)}" for k, v in backend.urls().items()))

    def close(self) -> None:
        """Tear the stack down (idempotent), then render this run's pages whatever happened,
        as the pytest driver does: Dagster skips the report asset after a failed scenario."""
        try:
            if self.backend is not None:
                self.say(f"scalelab: tearing the {self.backend.name} stack down")
                self.backend.down()
        finally:
            for undo in self._restore:
                undo()
            self._restore.clear()
            if self.run_dir.is_dir():
                try:
                    render_reports(self.report_dir, runs=[str(self.run_dir)])
                    self.say(f"scalelab: report {self.report_dir / INDEX} "
                             f"(this run: {self.run_dir})")
                except Exception as err:  # the records are safe; `scalelab report` re-renders
                    self.say(f"scalelab: could not render the report ({err}); "
                             "run `scalelab report`")


class ScalelabStack(dg.ConfigurableResource):  # type: ignore[misc]
    """The scalelab stack of one run: up at the first scenario, down when the run ends
    (success, failure or cancel); and where the run's records and report go."""

    backend: str = "auto"
    """auto | local | kind | existing (auto: kind when a Docker daemon answers)."""
    report_dir: str = str(REPORTS)
    """Where run records and the HTML report are written (relative: to the checkout)."""

    _session: StackSession | None = PrivateAttr(default=None)

    @property
    def reports(self) -> Path:
        path = Path(self.report_dir)
        return path if path.is_absolute() else ROOT / path

    @property
    def session(self) -> StackSession:
        if self._session is None:
            raise RuntimeError("the scalelab resource is used outside a Dagster run")
        return self._session

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext
                            ) -> Iterator["ScalelabStack"]:
        choose_backend(self.backend)  # an unknown name fails before anything starts
        log = context.log
        self._session = StackSession(
            backend_name=self.backend, report_dir=self.reports,
            run_id=record.new_run_id(time.time()), say=print if log is None else log.info)
        try:
            yield self
        finally:
            self._session.close()


# -- a scenario's metadata, from its record ------------------------------------------------------


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def verdict_table(rec: Mapping[str, Any]) -> str:
    """Every expectation's verdict as a Markdown table."""
    rows = ["| expectation | verdict | expected | observed |", "|---|---|---|---|"]
    for v in rec.get("verdicts") or []:
        rows.append(f"| {_cell(v['id'])} | {'passed' if v['passed'] else 'FAILED'} | "
                    f"{_cell(v['expected'])} | {_cell(v['observed'])} |")
    return "\n".join(rows)


def scenario_metadata(rec: Mapping[str, Any], *, run_json: Path,
                      page: Path | None) -> dict[str, Any]:
    """What a scenario asset shows and Dagster plots over runs (docs/dagster.md)."""
    summary = summarize(dict(rec))
    figures = scenario_figures(dict(rec))
    tasks = rec.get("tasks") or {}
    verdicts = rec.get("verdicts") or []
    meta: dict[str, Any] = {
        "verdict": rec["status"],
        "expectations passed": sum(1 for v in verdicts if v["passed"]),
        "expectations failed": sum(1 for v in verdicts if not v["passed"]),
        "expectations": dg.MetadataValue.md(verdict_table(rec)),
    }
    for v in verdicts:
        meta[f"expectation {v['id']}"] = (
            "passed" if v["passed"]
            else f"FAILED: expected {v['expected']}, observed {v['observed']}")
    for key, value in (("time to first scale-up (s)", summary["time_to_first_scale_up"]),
                       ("time back to floor (s)", summary["time_back_to_floor"]),
                       ("reaction (s)", figures["reaction_s"]),
                       ("reaction bound (s)", figures["bound_s"]),
                       ("reaction / bound", figures["reaction_ratio"])):
        meta[key] = dg.MetadataValue.null() if value is None else float(value)
    for name in ("published", "processed", "lost"):
        meta[f"tasks {name}"] = int(tasks.get(name) or 0)
    meta["backend"] = rec["backend"]["name"]
    meta["backend details"] = dg.MetadataValue.json(rec["backend"].get("details") or {})
    meta["run id"] = rec["run_id"]
    meta["run record"] = dg.MetadataValue.path(str(run_json))
    if page is not None:
        meta["report page"] = dg.MetadataValue.url(page.resolve().as_uri())
    return meta


def task_check(rec: Mapping[str, Any]) -> dg.AssetCheckResult:
    """No task lost: the ``no_task_loss`` expectation's own check on the record's task
    accounting, whether or not the scenario lists that expectation."""
    verdict = evaluate_one(
        Expectation(id=NO_TASK_LOST, kind="no_task_loss", value=0.0), timeline=[],
        phases={}, tasks=rec.get("tasks"), locust=rec.get("locust"), run_start=None)
    return dg.AssetCheckResult(
        check_name=NO_TASK_LOST, passed=bool(verdict["passed"]),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"observed": verdict["observed"],
                  **({"message": verdict["message"]} if verdict.get("message") else {})})


# -- assets ------------------------------------------------------------------------------


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """A cancelled run (Dagster interrupts its run worker with SIGINT; a pod gets SIGTERM)
    reaches ``run_scenario`` as ``KeyboardInterrupt``, as under pytest and ``scalelab up``
    (``scalelab.signals``): the record says "interrupted" and a second signal cannot break
    into writing it. Dagster's own handlers come back after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with interrupt_on(signal.SIGINT, signal.SIGTERM):
        yield


def _run(scenario: Scenario, stack: ScalelabStack, log: Callable[[str], None]
         ) -> dict[str, Any]:
    session = stack.session
    try:
        with _stop_signals_interrupt():
            backend = session.stack()
            settings = ExperimentSettings(run_id=session.run_id, report_dir=session.report_dir)
            return run_scenario(scenario, backend, settings=settings, progress=log)
    except ScalelabError as err:  # its message says what failed and the fix
        where = "" if session.error is None else "the stack did not come up: "
        raise dg.Failure(description=f"{scenario.name}: {where}{err}",
                         allow_retries=False) from None


def scenario_asset(scenario: Scenario, *, known: Sequence[str] = ()) -> dg.AssetsDefinition:
    """The asset of one scenario: run it, record it, fail on a failed expectation. It
    depends on the scenarios its ``twin:`` calibrates on (those among ``known``), so a
    job runs them first."""
    key = scenario_key(scenario)

    @dg.asset(
        key=key, group_name=scenario_group(scenario),
        deps=[dg.AssetKey(["scenario", n]) for n in scenario.twin_calibrate_on if n in known],
        description=f"{scenario.description}\n\nfile: {scenario.file}",
        tags={_name(t): "" for t in scenario.tags},
        kinds={"python"},
        check_specs=[dg.AssetCheckSpec(NO_TASK_LOST, asset=key,
                                       description="every published task processed, "
                                                   "queue empty at the end")],
        metadata={"scenario file": dg.MetadataValue.path(str(scenario.file)),
                  "planned duration (s)": scenario.duration},
    )
    def _scenario(context: dg.AssetExecutionContext,
                  scalelab: ScalelabStack) -> Iterator[Any]:
        rec = _run(scenario, scalelab, context.log.info)
        run_dir = scalelab.session.run_dir / scenario.name
        page: Path | None
        try:
            page = render_scenario(run_dir)
        except (ScalelabError, OSError) as err:  # the record is there; the report re-renders
            context.log.warning(f"{scenario.name}: could not render its page: {err}")
            page = None
        meta = scenario_metadata(rec, run_json=run_dir / record.RUN_FILE, page=page)
        yield task_check(rec)
        if rec["status"] != "passed":
            # The figures of a failed run still belong in the asset's history.
            yield dg.AssetObservation(asset_key=key, metadata=meta)
            raise dg.Failure(description=explain(rec), metadata={
                "verdict": rec["status"], "expectations": meta["expectations"],
                "run record": meta["run record"],
                **({"report page": meta["report page"]} if page else {})},
                allow_retries=False)
        yield dg.MaterializeResult(metadata=meta)

    return _scenario


def _this_or_latest(stack: ScalelabStack) -> Path | None:
    """This Dagster run's scalelab run when it ran scenarios, else the latest stored one."""
    session = stack.session
    if session.run_dir.is_dir():
        return session.run_dir
    runs = record.find_runs(session.report_dir)
    return runs[0] if runs else None


def report_asset(deps: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(key=REPORT_KEY, deps=list(deps), group_name="reports", kinds={"html"},
              description="reports/index.html: the latest run in full, earlier runs as "
                          "history (scalelab.report; what `scalelab report` renders)")
    def _report(context: dg.AssetExecutionContext,
                scalelab: ScalelabStack) -> dg.MaterializeResult:
        reports = scalelab.session.report_dir
        run = _this_or_latest(scalelab)
        if run is None:
            raise dg.Failure(description=f"no run records under {reports}: materialize "
                                         "scenario assets first", allow_retries=False)
        skipped: list[Skipped] = []
        written = render_reports(reports, runs=[str(run)], skipped=skipped)
        for s in skipped:
            context.log.warning(f"scalelab report: skipped {s.path}: {s.reason}")
        records = [record.load(p.parent) for p in sorted(run.glob(f"*/{record.RUN_FILE}"))]
        if records:
            context.log.info("scalelab: figures (seconds)\n" + format_figures(records))
        statuses = {r["scenario"]["name"]: r["status"] for r in records}
        return dg.MaterializeResult(metadata={
            "index": dg.MetadataValue.url((reports / INDEX).resolve().as_uri()),
            "run id": run.name,
            "run page count": len(written) - 1,
            "scenarios passed": sum(1 for s in statuses.values() if s == "passed"),
            "scenarios": dg.MetadataValue.json(statuses),
            "records skipped": len(skipped),
        })

    return _report


class ComparisonConfig(dg.Config):  # type: ignore[misc]
    """``scalelab compare``'s options."""

    margin: str = f"{DEFAULT_MARGIN * 100:g}"
    """Noise margin in percent: differences within it are not flagged."""


def comparison_asset() -> dg.AssetsDefinition:
    @dg.asset(key=COMPARISON_KEY, deps=[REPORT_KEY], group_name="reports", kinds={"html"},
              description="This run against the previous one, scenario by scenario "
                          "(`scalelab compare`, with its noise margin); regressions are "
                          "flagged in the metadata and by the no_regression check",
              check_specs=[dg.AssetCheckSpec(NO_REGRESSION, asset=COMPARISON_KEY,
                                             description="no figure worse beyond the margin, "
                                                         "no scenario that passed now failing")])
    def _comparison(context: dg.AssetExecutionContext, config: ComparisonConfig,
                    scalelab: ScalelabStack) -> Iterator[Any]:
        try:
            margin = parse_margin(config.margin)
        except ValueError as err:
            raise dg.Failure(description=str(ConfigError(
                f"'{config.margin}' is not a margin: {err}", field="margin",
                fix="give a percentage such as 5 or 2.5")), allow_retries=False) from None
        yield from compare_latest(scalelab, margin=margin, log=context.log.info)

    return _comparison


def compare_latest(stack: ScalelabStack, *, margin: float, log: Callable[[str], None]
                   ) -> Iterator[Any]:
    """The comparison's events: the check, then the materialization."""
    reports = stack.session.report_dir
    contender = _this_or_latest(stack)
    runs = record.find_runs(reports)
    older = [r for r in runs if contender is not None and r.name < contender.name]
    if contender is None or not older:
        yield dg.AssetCheckResult(check_name=NO_REGRESSION, passed=True,
                                  metadata={"note": "no previous run to compare with"})
        yield dg.MaterializeResult(metadata={
            "contender": contender.name if contender else "none", "baseline": "none",
            "regressions": 0, "note": "no previous run to compare with"})
        return
    baseline = older[0]
    try:
        comp = compare_runs(baseline, contender, margin=margin)
    except ConfigError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from None
    table = format_table(comp)
    log(table)
    page = render_html(comp, reports / f"compare-{baseline.name}-vs-{contender.name}.html",
                       reports_dir=reports)
    render_index(reports)  # lists the new comparison page
    broke = [n for n, (b, c) in comp.statuses.items() if all_passed(b) and not all_passed(c)]
    worse = [f"{r.scenario}: {r.metric.label} {r.baseline} -> {r.contender}"
             for r in comp.regressions]
    yield dg.AssetCheckResult(
        check_name=NO_REGRESSION, passed=not worse and not broke,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"regressions": len(worse), "verdict regressions": len(broke)})
    yield dg.MaterializeResult(metadata={
        "baseline": baseline.name, "contender": contender.name,
        "margin (%)": margin * 100, "regressions": len(worse),
        "verdict regressions": dg.MetadataValue.json(broke),
        "regressed": dg.MetadataValue.md("\n".join(f"- {w}" for w in worse) or "none"),
        "table": dg.MetadataValue.md(f"```\n{table}\n```"),
        "page": dg.MetadataValue.url(page.resolve().as_uri()),
    })


# -- definitions ---------------------------------------------------------------------------

ALL_SCENARIOS_JOB = "all_scenarios"
NIGHTLY_SCHEDULE = "nightly_scenarios"
REPORT_JOB = "report_and_comparison"
AFTER_FAILURE_SENSOR = "report_after_failed_scenarios"


def _after_failure(all_job: Any, report_job: Any) -> dg.SensorDefinition:
    """Dagster skips the report and the comparison after a failed scenario; this sensor
    (stopped by default, like the schedule) runs them once the failed run has ended."""

    @dg.run_failure_sensor(name=AFTER_FAILURE_SENSOR, monitored_jobs=[all_job],
                           request_job=report_job,
                           default_status=dg.DefaultSensorStatus.STOPPED,
                           description=f"after a failed {ALL_SCENARIOS_JOB} run: the report "
                                       "and the comparison of that run")
    def _sensor(context: dg.RunFailureSensorContext) -> dg.RunRequest:
        failed = context.dagster_run.run_id
        return dg.RunRequest(run_key=failed, tags={"scalelab/after-run": failed})

    return _sensor


def build_definitions(paths: Sequence[Path] | None = None, *,
                      env: Mapping[str, str] = os.environ) -> dg.Definitions:
    """The Definitions for the scenarios under ``paths`` (default: ``scenario_paths(env)``)."""
    scenarios = load(scenario_paths(env) if paths is None else list(paths))
    names = [s.name for s in scenarios]
    scenario_assets = [scenario_asset(s, known=names) for s in scenarios]
    keys = [scenario_key(s) for s in scenarios]
    all_job = dg.define_asset_job(
        ALL_SCENARIOS_JOB, selection=dg.AssetSelection.assets(*keys, REPORT_KEY, COMPARISON_KEY),
        description="every scenario on one stack, then the report and the comparison")
    nightly = dg.ScheduleDefinition(
        name=NIGHTLY_SCHEDULE, job=all_job, cron_schedule="0 2 * * *",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="every scenario at 02:00 (off until turned on)")
    report_job = dg.define_asset_job(
        REPORT_JOB, selection=dg.AssetSelection.assets(REPORT_KEY, COMPARISON_KEY),
        description="the report and the comparison of the latest run")
    stack = ScalelabStack(backend=env.get(BACKEND_ENV) or "auto",
                          report_dir=env.get(REPORT_DIR_ENV) or str(REPORTS))
    return dg.Definitions(
        assets=[*scenario_assets, report_asset(keys), comparison_asset()],
        jobs=[all_job, report_job], schedules=[nightly],
        sensors=[_after_failure(all_job, report_job)], resources={RESOURCE_KEY: stack},
        executor=dg.in_process_executor)


defs = build_definitions()
