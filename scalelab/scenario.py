"""Scenarios are data: load a scenario YAML, check it, and hand back typed frozen objects.

A scenario names the scaling manifest(s) to apply, the workload (task mix, batch size),
ordered load phases and the expectations checked against the replica timeline. The
format reference is ``docs/scenarios.md``; the schema is
``scalelab/schemas/scenario.schema.json``.

Checking happens in two passes, both before anything starts: the JSON Schema (draft
2020-12, ``additionalProperties: false`` everywhere) catches unknown fields and wrong
types; the semantic pass catches what a schema cannot say (a missing manifest, an
expectation on a phase that does not exist, a replica target outside the manifest's
min/max, a ``within`` longer than its phase, ...). Every problem is a ``ConfigError``
naming the file, the field path (``phases[1].load.users``) and the fix.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from scalelab import paths
from scalelab.errors import ConfigError
from scalelab.expectations import KINDS, SCALED_BY_METRICS, Kind
from scalelab.expectations import Expectation as Expectation  # re-exported: a scenario's part
from scalelab.faults import Fault, Scheduled, check_ends, parse_faults, schedule
from scalelab.scaling_object import ScalingObject

#: The tools the agent implements and the arguments each takes (services/common).
TOOLS: Mapping[str, tuple[str, ...]] = {
    "cpu": ("cpu_ms",),
    "io": ("io_ms",),
    "mixed": ("cpu_ms", "io_ms"),
}

LoadMode = Literal["users", "rate", "tasks", "idle"]

# -- the typed scenario -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Tool:
    """One entry of the task mix: a tool, its relative weight and its arguments."""

    name: str
    weight: float
    arguments: Mapping[str, int]


@dataclass(frozen=True, kw_only=True)
class Workload:
    """What each published task looks like and how many go in one request."""

    tools: tuple[Tool, ...]
    #: Tasks per request: 1 posts to ``/tasks``, more to ``/tasks/batch``.
    batch_size: int = 1
    #: Seed for the tool choice, so two runs publish the same sequence.
    seed: int | None = None


@dataclass(frozen=True, kw_only=True)
class Load:
    """A phase's load. ``mode`` says which fields matter.

    - ``users``: ``users`` Locust users ramped at ``spawn_rate``/s, each posting and then
      waiting ``think_time`` seconds (closed loop: the rate follows the API's speed).
    - ``rate``: ``rate`` tasks/s published on a fixed schedule (open loop), whatever the
      number of users (``users`` is only the concurrency available to keep the schedule).
    - ``tasks``: ``tasks`` tasks published at ``rate`` tasks/s, then nothing.
    - ``idle``: nothing is published.
    """

    mode: LoadMode
    users: int | None = None
    spawn_rate: float | None = None
    think_time: float = 1.0
    rate: float | None = None
    tasks: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode}
        for key in ("users", "spawn_rate", "rate", "tasks"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.mode == "users":
            out["think_time"] = self.think_time
        return out


@dataclass(frozen=True, kw_only=True)
class Phase:
    name: str
    duration: float
    load: Load
    #: This phase's task mix when it differs from the workload's (None: the workload's).
    tools: tuple[Tool, ...] | None = None
    description: str = ""
    #: Actions fired at offsets into the phase (``scalelab.faults``).
    faults: tuple[Fault, ...] = ()

    def load_dict(self) -> dict[str, Any]:
        """The phase's load as the run record stores it (``phases[].load``)."""
        return self.load.as_dict()


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A checked scenario. ``spec`` is the document as loaded (for the run record)."""

    name: str
    description: str
    tags: tuple[str, ...]
    file: Path
    manifests: tuple[Path, ...]
    workload: Workload
    phases: tuple[Phase, ...]
    expectations: tuple[Expectation, ...]
    #: Effective (min, max) replicas of the scaling object on the agent Deployment.
    replica_bounds: tuple[int, int]
    #: ``scalelab.scaling_manifests.ScalingObject`` items from every manifest, in file order.
    scaling_objects: tuple[ScalingObject, ...] = ()
    #: The phase the reaction times count from (None: the first phase with load).
    reaction_phase: str | None = None
    #: Repetitions on the same stack (``repeat:``; ``--repeat`` overrides it).
    repeat: int = 1
    #: Repetitions that must pass for the scenario to pass (None: all of them).
    min_pass: int | None = None
    #: Scenarios whose newest records calibrate the twin's prediction of this run
    #: (``twin: {calibrate_on: [...]}``; ``scalelab.twin.check``); empty: no prediction.
    twin_calibrate_on: tuple[str, ...] = ()
    spec: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Planned seconds of load, all phases together."""
        return sum(p.duration for p in self.phases)

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def faults(self) -> tuple[Fault, ...]:
        """Every phase's faults, in phase order."""
        return tuple(f for p in self.phases for f in p.faults)

    def fault_schedule(self) -> list[Scheduled]:
        """Every fault firing and healing, seconds after the first phase starts."""
        offsets = {p.name: (start, end) for p, start, end in self.phase_offsets()}
        return schedule(self.faults, offsets=offsets)

    def phase_offsets(self) -> list[tuple[Phase, float, float]]:
        """(phase, planned start offset, planned end offset) in seconds from the first."""
        out, t = [], 0.0
        for p in self.phases:
            out.append((p, t, t + p.duration))
            t += p.duration
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``scenario`` object of the run record."""
        return {
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "file": str(self.file),
            "spec": json.loads(json.dumps(self.spec, default=str)),
        }


# -- loading ------------------------------------------------------------------------------


@cache
def schema() -> dict[str, Any]:
    text = resources.files("scalelab.schemas").joinpath("scenario.schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


def field_path(parts: Iterable[str | int]) -> str:
    """``["phases", 1, "load", "users"]`` -> ``phases[1].load.users``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<document>"


def _schema_error(err: jsonschema.ValidationError, file: str) -> ConfigError:
    """Turn the most relevant jsonschema error into a ConfigError with a fix."""
    where = list(err.absolute_path)
    sch = err.schema if isinstance(err.schema, dict) else {}
    validator = err.validator
    if validator == "additionalProperties":
        allowed = sorted(sch.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        name = extra[0] if extra else "?"
        what = "tool" if where and where[-1] == "tools" else "field"
        return ConfigError(
            f"unknown {what} '{name}'", file=file, field=field_path([*where, name]),
            fix=f"remove it or use one of: {', '.join(allowed)}",
        )
    if validator == "required":
        missing = str(err.message).split("'")[1] if "'" in err.message else err.message
        return ConfigError(
            f"missing required field '{missing}'", file=file,
            field=field_path([*where, missing]), fix=f"add '{missing}' (see docs/scenarios.md)",
        )
    fixes = {
        "type": f"use a value of type {sch.get('type')}",
        "exclusiveMinimum": f"use a value greater than {sch.get('exclusiveMinimum')}",
        "minimum": f"use a value of at least {sch.get('minimum')}",
        "maximum": f"use a value of at most {sch.get('maximum')}",
        "pattern": f"use lowercase letters, digits and '-' (pattern {sch.get('pattern')})",
        "minItems": "give at least one item",
        "minProperties": "give at least one entry",
        "const": f"use {json.dumps(sch.get('const'))} or leave the field out",
        "enum": f"use one of: {', '.join(map(str, sch.get('enum', [])))}",
        "uniqueItems": "remove the duplicate",
        "minLength": "give a non-empty value",
    }
    return ConfigError(
        err.message, file=file, field=field_path(where),
        fix=fixes.get(str(validator), "see docs/scenarios.md"),
    )


#: Byte-order marks of UTF-16, the encoding YAML accepts besides UTF-8 (YAML 1.1, 5.2).
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _line_column(text: str, offset: int) -> str:
    """Where ``text[offset]`` is, as an editor counts (from 1)."""
    line = text.count("\n", 0, offset) + 1
    column = offset - text.rfind("\n", 0, offset)
    return f"line {line}, column {column}"


def _decode(path: Path, data: bytes) -> str:
    """The file as text: UTF-8 (a BOM is allowed) or UTF-16 with a BOM, as YAML reads.

    Decoding here rather than in the YAML reader names the problem (binary, or another
    encoding such as Latin-1) with its place and the fix, instead of a traceback.
    """
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as err:
            raise ConfigError(f"not UTF-16 text after its byte-order mark: {err.reason}",
                              file=str(path), fix="save the file as UTF-8") from err
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ConfigError(
            f"a binary file, not YAML text (a NUL byte at offset {nul})", file=str(path),
            fix="give a scenario YAML file (see experiments/scenarios/*.yaml and "
                "docs/scenarios.md)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = data[:err.start].decode("utf-8-sig")  # decodes: the error is at err.start
        raise ConfigError(
            f"not UTF-8 text: byte 0x{data[err.start]:02x} at "
            f"{_line_column(before, len(before))} ({err.reason}): the file is in another "
            "encoding (Latin-1, Windows-1252, ...) or is not text", file=str(path),
            fix="save it as UTF-8 (the editor's encoding setting), or convert it: "
                f"iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}") from err


def _read_yaml(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read scenario: {err.strerror}", file=str(path),
                          fix="check the path") from err
    text = _decode(path, data)
    try:
        return yaml.safe_load(text)
    except yaml.reader.ReaderError as err:
        # A character YAML does not allow in a stream (C0 controls other than tab/newline).
        raise ConfigError(
            f"character U+{err.character:04X} at {_line_column(text, err.position)} is not "
            "allowed in YAML", file=str(path),
            fix="remove it (a control character pasted in), or quote it as an escape in a "
                'double-quoted string ("\\a")') from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"bad YAML{line}: {problem}", file=str(path),
                          fix="fix the YAML syntax (indentation, quotes, ':' after keys)") from err


def _resolve_manifest(ref: str, scenario_file: Path) -> Path | None:
    candidate = Path(ref)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for base in (paths.ROOT, scenario_file.parent):
        if (base / candidate).is_file():
            return (base / candidate).resolve()
    return None


def _load_scaling(path: Path, *, strict: bool) -> list[ScalingObject]:
    # Imported here: the manifest module pulls kubernetes-validate, which the
    # schema-only callers (docs tooling) do not need.
    from scalelab.scaling_manifests import load_scaling, validate_scaling

    return list(validate_scaling(path) if strict else load_scaling(path))


def offered_metrics(doc: Mapping[str, Any]) -> frozenset[str]:
    """The ``scaled_by`` names a scaling object can scale on.

    HPA ``spec.metrics``: a Resource metric offers its resource (cpu, memory), an External
    one offers ``external`` (and ``rabbitmq`` when its name says so, as KEDA's
    ``s<i>-rabbitmq-<queue>`` does). ScaledObject ``spec.triggers``: cpu/memory triggers become
    Resource metrics of the HPA KEDA generates; every other trigger becomes an External
    metric (``s<i>-<type>-...``), so rabbitmq offers ``rabbitmq`` and ``external``.
    """
    spec = doc.get("spec") or {}
    out: set[str] = set()
    if doc.get("kind") == "ScaledObject":
        for trig in spec.get("triggers") or []:
            kind = str((trig or {}).get("type", ""))
            out.update({kind} if kind in ("cpu", "memory") else {kind, "external"})
    else:
        for metric in spec.get("metrics") or []:
            kind = str((metric or {}).get("type", ""))
            if kind == "Resource":
                out.add(str(((metric or {}).get("resource") or {}).get("name", "")))
            elif kind == "External":
                out.add("external")
                name = str((((metric or {}).get("external") or {}).get("metric") or {})
                           .get("name", ""))
                if "rabbitmq" in name.lower():
                    out.add("rabbitmq")
    return frozenset(out & set(SCALED_BY_METRICS))


class _Checker:
    """The semantic pass over a schema-valid document."""

    def __init__(self, doc: dict[str, Any], file: Path, *, strict: bool) -> None:
        self.doc = doc
        self.file = file
        self.strict = strict
        self.fname = str(file)
        #: Metrics the agent's scaling object scales on (for ``scaled_by``), set by manifests().
        self.offered: frozenset[str] = frozenset(SCALED_BY_METRICS)

    def error(self, message: str, field: str, fix: str) -> ConfigError:
        return ConfigError(message, file=self.fname, field=field, fix=fix)

    def manifests(self) -> tuple[tuple[Path, ...], tuple[ScalingObject, ...], tuple[int, int]]:
        from scalelab.settings import AGENT_DEPLOYMENT

        resolved: list[Path] = []
        objects: list[ScalingObject] = []
        for i, ref in enumerate(self.doc["manifests"]):
            path = _resolve_manifest(ref, self.file)
            if path is None:
                known = sorted(p.name for p in paths.SCALING_MANIFESTS.glob("*.yaml"))
                raise self.error(
                    f"manifest '{ref}' not found", f"manifests[{i}]",
                    "give a path relative to the repo root (e.g. manifests/scaling/hpa-cpu.yaml)"
                    f" or to the scenario file; shipped: {', '.join(known) or 'none'}",
                )
            try:
                objs = _load_scaling(path, strict=self.strict)
            except ConfigError as err:
                raise self.error(f"manifest '{ref}' is invalid: {err.message}",
                                 f"manifests[{i}]", err.fix or "fix the manifest") from err
            resolved.append(path)
            objects.extend(objs)
        scalers = [o for o in objects
                   if o.kind in ("HorizontalPodAutoscaler", "ScaledObject")
                   and o.target == AGENT_DEPLOYMENT]
        if not scalers:
            raise self.error(
                f"no HorizontalPodAutoscaler or ScaledObject targets Deployment "
                f"'{AGENT_DEPLOYMENT}'", "manifests",
                "add a scaling manifest whose scaleTargetRef names the agent Deployment",
            )
        if len(scalers) > 1:
            names = ", ".join(f"{o.kind}/{o.name}" for o in scalers)
            raise self.error(
                f"more than one scaling object targets Deployment '{AGENT_DEPLOYMENT}' "
                f"({names}): KEDA's admission webhook rejects a ScaledObject on a workload "
                "an HPA already scales, and two HPAs on the same pods both stop with "
                "AmbiguousSelector", "manifests",
                "apply one scaling object per scenario (a ScaledObject may hold several "
                "triggers, e.g. cpu + rabbitmq)",
            )
        only = scalers[0]
        self.offered = offered_metrics(only.doc)
        # an HPA or ScaledObject always has effective bounds (ScalingObject fills defaults)
        assert only.min_replicas is not None and only.max_replicas is not None
        return tuple(resolved), tuple(objects), (int(only.min_replicas), int(only.max_replicas))

    def tools(self, raw: Mapping[str, Any], where: str) -> tuple[Tool, ...]:
        tools = []
        for name, spec in raw.items():
            if name not in TOOLS:  # the schema already refuses it; kept for clarity
                raise self.error(f"unknown tool '{name}'", f"{where}.{name}",
                                 f"use one of: {', '.join(TOOLS)}")
            args = {k: int(v) for k, v in spec.items() if k != "weight"}
            tools.append(Tool(name=name, weight=float(spec.get("weight", 1)), arguments=args))
        if all(t.weight == 0 for t in tools):
            raise self.error("every tool weight is zero: no task could be chosen",
                             where, "give at least one tool a weight above 0")
        return tuple(tools)

    def workload(self) -> Workload:
        raw = self.doc["workload"]
        return Workload(tools=self.tools(raw["tools"], "workload.tools"),
                        batch_size=int(raw.get("batch_size", 1)), seed=raw.get("seed"))

    def phases(self) -> tuple[Phase, ...]:
        out: list[Phase] = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(self.doc["phases"]):
            name = raw["name"]
            if name in seen:
                raise self.error(f"duplicate phase name '{name}' (also phases[{seen[name]}])",
                                 f"phases[{i}].name", "give every phase a unique name")
            seen[name] = i
            load = self.load(raw["load"], f"phases[{i}].load", float(raw["duration"]))
            tools = self.tools(raw["tools"], f"phases[{i}].tools") if "tools" in raw else None
            faults = parse_faults(raw.get("faults", []), file=self.fname, where=f"phases[{i}]",
                                  phase=name, phase_duration=float(raw["duration"]))
            out.append(Phase(name=name, duration=float(raw["duration"]), load=load,
                             tools=tools, description=raw.get("description", ""),
                             faults=faults))
        self.fault_ends(out)
        return tuple(out)

    def fault_ends(self, phases: Sequence[Phase]) -> None:
        """Fault ids are unique; a timed fault ends before the last phase does."""
        where: dict[str, str] = {}
        offsets, t = {}, 0.0
        for i, p in enumerate(phases):
            offsets[p.name] = (t, t + p.duration)
            t += p.duration
            for j, f in enumerate(p.faults):
                if f.id in where:
                    raise self.error(f"duplicate fault id '{f.id}' (also {where[f.id]})",
                                     f"phases[{i}].faults[{j}].id",
                                     "give every fault a unique id")
                where[f.id] = f"phases[{i}].faults[{j}]"
        check_ends([f for p in phases for f in p.faults], offsets=offsets, total=t,
                   file=self.fname, where=where)

    def load(self, raw: dict[str, Any], where: str, duration: float) -> Load:
        modes = "one of: users (+spawn_rate, think_time), rate, tasks + rate, idle: true"
        if raw.get("idle"):
            others = sorted(set(raw) - {"idle"})
            if others:
                raise self.error(f"an idle phase takes no '{others[0]}'",
                                 f"{where}.{others[0]}", "remove it, or drop 'idle'")
            return Load(mode="idle")
        if "tasks" in raw or "rate" in raw:
            for bad in ("spawn_rate", "think_time"):
                if bad in raw:
                    raise self.error(
                        f"'{bad}' only applies to a users phase; this phase publishes at "
                        "a fixed rate", f"{where}.{bad}",
                        "remove it (a fixed-rate phase keeps its rate whatever the users)",
                    )
            if "rate" not in raw:
                raise self.error("'tasks' needs the 'rate' they are published at",
                                 f"{where}.rate", "add 'rate: <tasks per second>'")
            rate = float(raw["rate"])
            if "tasks" in raw:
                tasks = int(raw["tasks"])
                needed = tasks / rate
                if needed > duration:
                    raise self.error(
                        f"{tasks} tasks at {rate:g}/s take {needed:g}s, longer than the "
                        f"phase ({duration:g}s)", f"{where}.tasks",
                        "raise 'rate', lower 'tasks' or lengthen the phase",
                    )
                return Load(mode="tasks", tasks=tasks, rate=rate, users=raw.get("users"))
            return Load(mode="rate", rate=rate, users=raw.get("users"))
        if "users" not in raw:
            raise self.error("the load names no mode", where, f"give {modes}")
        users = int(raw["users"])
        return Load(mode="users", users=users, spawn_rate=float(raw.get("spawn_rate", users)),
                    think_time=float(raw.get("think_time", 1.0)))

    def expectations(self, phases: Sequence[Phase], bounds: tuple[int, int]
                     ) -> tuple[Expectation, ...]:
        """Check each expectation against its kind's rules (``scalelab.expectations.KINDS``)."""
        by_name = {p.name: p for p in phases}
        out: list[Expectation] = []
        ids: dict[str, int] = {}
        for i, raw in enumerate(self.doc.get("expectations", [])):
            where = f"expectations[{i}]"
            found = [k for k in KINDS if k in raw]
            if len(found) != 1:
                raise self.error(f"an expectation needs exactly one kind, found "
                                 f"{', '.join(found) or 'none'}",
                                 where, f"use one of: {', '.join(KINDS)} (one per item)")
            kind = KINDS[found[0]]
            self.expectation_phase(raw, kind, where, by_name)
            self.expectation_modifiers(raw, kind, where, bounds)
            self.expectation_fits(raw, where, by_name)
            exp_id = self.expectation_id(raw, kind, where, ids)
            ids[exp_id] = i
            value = raw[kind.name]
            if kind.metric_valued:
                number, metric = 0.0, str(value)
            else:
                number, metric = (float(value) if value is not True else 1.0), None
            out.append(Expectation(
                id=exp_id, kind=kind.name, value=number, metric=metric, phase=raw.get("phase"),
                within=raw.get("within"), hold_for=raw.get("for"),
                count=raw.get("count", "ready"), description=raw.get("description", ""),
            ))
        return tuple(out)

    def expectation_phase(self, raw: Mapping[str, Any], kind: Kind, where: str,
                          by_name: Mapping[str, Phase]) -> None:
        """The kind's phase rule; the phase exists; ``within``/``for`` fit in it."""
        phase = raw.get("phase")
        if phase is not None and kind.phase == "refused":
            raise self.error(f"'{kind.name}' is checked over the whole run, not a phase",
                             f"{where}.phase", "remove 'phase'")
        if phase is None and kind.phase == "required":
            raise self.error(f"'{kind.name}' {kind.phase_why}", f"{where}.phase",
                             f"add 'phase: <one of {', '.join(by_name)}>'")
        if phase is not None and phase not in by_name:
            raise self.error(f"phase '{phase}' does not exist", f"{where}.phase",
                             f"use one of: {', '.join(by_name)}")

    def expectation_modifiers(self, raw: Mapping[str, Any], kind: Kind, where: str,
                              bounds: tuple[int, int]) -> None:
        """``within``, ``for`` and ``count`` only where the kind takes them; the value fits."""
        takes = {"within": [k for k in KINDS.values() if k.takes_within],
                 "for": [k for k in KINDS.values() if k.takes_for]}
        if "within" in raw and not kind.takes_within:
            raise self.error(f"'within' does not apply to '{kind.name}'", f"{where}.within",
                             f"remove it ('within' goes with "
                             f"{', '.join(k.name for k in takes['within'])})")
        if ("for" in raw) != kind.takes_for:
            pair = kind.name if kind.takes_for else "' / '".join(k.name for k in takes["for"])
            raise self.error(
                f"'{pair}' and 'for' go together", f"{where}.{'for' if 'for' in raw else pair}",
                f"write '{pair}: N' with 'for: <seconds>'" if kind.takes_for
                else f"remove 'for' (it only applies to '{pair}')",
            )
        if "count" in raw and not kind.takes_count:
            raise self.error(f"'count' does not apply to '{kind.name}'", f"{where}.count",
                             "remove it")
        value, (lo, hi) = raw[kind.name], bounds
        if kind.replica_valued and not lo <= int(value) <= hi:
            raise self.error(
                f"'{kind.name}: {value}' is outside the manifest's replica range {lo}..{hi}",
                f"{where}.{kind.name}",
                f"use a count between {lo} and {hi} (minReplicas..maxReplicas)",
            )
        if kind.metric_valued and value not in self.offered:
            have = ", ".join(m for m in SCALED_BY_METRICS if m in self.offered) or "none"
            raise self.error(
                f"'{kind.name}: {value}': the scaling object has no {value} metric or "
                f"trigger (it scales on: {have})", f"{where}.{kind.name}",
                f"use one of: {have}, or add a {value} trigger to the manifest",
            )

    def expectation_fits(self, raw: Mapping[str, Any], where: str,
                         by_name: Mapping[str, Phase]) -> None:
        """``within`` and ``for`` are no longer than the expectation's phase."""
        phase = raw.get("phase")
        limit_phase = by_name[phase] if phase is not None else None
        for key in ("within", "for"):
            if key in raw and limit_phase is not None and raw[key] > limit_phase.duration:
                raise self.error(
                    f"'{key}: {raw[key]:g}' is longer than phase '{phase}' "
                    f"({limit_phase.duration:g}s)", f"{where}.{key}",
                    f"use at most {limit_phase.duration:g}s or lengthen the phase",
                )

    def expectation_id(self, raw: Mapping[str, Any], kind: Kind, where: str,
                       ids: Mapping[str, int]) -> str:
        """The given id (unique), or one derived from kind, phase and value (made unique)."""
        phase, value = raw.get("phase"), raw[kind.name]
        exp_id = raw.get("id") or "-".join(
            str(x) for x in (kind.name, phase, None if kind.flag else value) if x is not None
        )
        if exp_id in ids:
            if "id" in raw:
                raise self.error(f"duplicate expectation id '{exp_id}' "
                                 f"(also expectations[{ids[exp_id]}])", f"{where}.id",
                                 "give every expectation a unique id")
            n = 2
            while f"{exp_id}-{n}" in ids:
                n += 1
            exp_id = f"{exp_id}-{n}"
        return str(exp_id)


def load_scenario(path: Path | str, *, strict_manifests: bool = False) -> Scenario:
    """Read and check one scenario file; raise ``ConfigError`` on the first problem.

    ``strict_manifests`` also validates the scaling manifests against the Kubernetes and
    KEDA schemas (``scalelab.scaling_manifests.validate_scaling``; slower, used by ``validate``).
    """
    path = Path(path)
    fname = str(path)
    doc = _read_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError("a scenario is a YAML mapping (name, description, manifests, ...)",
                          file=fname, field="<document>",
                          fix="start from one of experiments/scenarios/*.yaml")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(e.path), e.validator))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise _schema_error(best, fname)
    check = _Checker(doc, path, strict=strict_manifests)
    manifests, objects, bounds = check.manifests()
    workload = check.workload()
    phases = check.phases()
    expectations = check.expectations(phases, bounds)
    reaction_phase = doc.get("reaction_phase")
    if reaction_phase is not None and reaction_phase not in {p.name for p in phases}:
        raise check.error(f"phase '{reaction_phase}' does not exist", "reaction_phase",
                          f"use one of: {', '.join(p.name for p in phases)}")
    repeat, min_pass = int(doc.get("repeat", 1)), doc.get("min_pass")
    if min_pass is not None and "repeat" in doc and int(min_pass) > repeat:
        raise check.error(f"min_pass {min_pass} is more than the {repeat} repetition(s)",
                          "min_pass", f"lower min_pass, or set repeat: >= {min_pass}")
    calibrate_on = _twin(check, doc, expectations)
    return Scenario(
        name=doc["name"], description=doc["description"], tags=tuple(doc.get("tags", [])),
        file=path.resolve(), manifests=manifests, workload=workload, phases=phases,
        expectations=expectations, replica_bounds=bounds, scaling_objects=objects,
        reaction_phase=reaction_phase, spec=doc, repeat=repeat,
        min_pass=None if min_pass is None else int(min_pass), twin_calibrate_on=calibrate_on,
    )


def _twin(check: _Checker, doc: Mapping[str, Any],
          expectations: Sequence[Expectation]) -> tuple[str, ...]:
    """The ``twin:`` section's scenarios; ``matches_twin`` needs the section."""
    calibrate_on = tuple((doc.get("twin") or {}).get("calibrate_on") or ())
    if doc["name"] in calibrate_on:
        raise check.error(f"the twin cannot be calibrated on '{doc['name']}' itself: the check "
                          "would compare the policy with its own past runs",
                          "twin.calibrate_on", "name the scenario that ran the policy you "
                          "tuned from (e.g. the one with the current manifest)")
    for i, exp in enumerate(expectations):
        if exp.kind == "matches_twin" and not calibrate_on:
            raise check.error("'matches_twin' compares the run with the twin's prediction, "
                              "and the scenario has no twin: section",
                              f"expectations[{i}].matches_twin",
                              "add twin: {calibrate_on: [<scenario whose runs calibrate "
                              "it>]}, or remove the expectation")
    return calibrate_on


def scenario_files(paths_: Iterable[Path | str]) -> list[Path]:
    """Expand folders into their ``*.yaml``/``*.yml`` files (sorted); keep files as given."""
    out: list[Path] = []
    for item in paths_:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        elif p.exists():
            out.append(p)
        else:
            raise ConfigError("no such file or folder", file=str(p),
                              fix="give a scenario file or a folder of them")
    return out


def load_scenarios(paths_: Iterable[Path | str], *, strict_manifests: bool = False
                   ) -> list[Scenario]:
    """Load files and folders of scenarios; names must be unique across all of them."""
    scenarios: list[Scenario] = []
    seen: dict[str, Path] = {}
    for file in scenario_files(paths_):
        sc = load_scenario(file, strict_manifests=strict_manifests)
        if sc.name in seen:
            raise ConfigError(
                f"duplicate scenario name '{sc.name}' (also in {seen[sc.name]})",
                file=str(file), field="name", fix="give every scenario a unique name",
            )
        seen[sc.name] = file
        scenarios.append(sc)
    return scenarios
