"""Schemas of the custom resources scalelab applies, from packages a user's install has.

A user's clone has no ``../shared/reference``, so the KEDA and Prometheus operator CRD
schemas come from PyPI packages that are generated from those projects' CRDs, one release
of the package per upstream release (cloudcoil's "versioned models"):

==========================================  =====================================  ==========
apiVersion / kind                           package (pyproject pin)                 upstream
==========================================  =====================================  ==========
keda.sh/v1alpha1 ScaledObject,              cloudcoil-models-keda 2.16.x            KEDA
TriggerAuthentication                                                               2.16.0
monitoring.coreos.com/v1 PodMonitor,        cloudcoil-models-prometheus-operator    operator
ServiceMonitor                              0.79.2.x, narrowed to 0.78.2            v0.78.2
==========================================  =====================================  ==========

The pinned charts (``manifests/cluster/charts.yaml``) are keda 2.16.0 and
kube-prometheus-stack 66.3.0, whose operator (``appVersion``) is v0.78.2. KEDA's CRDs are
identical in v2.16.0 and v2.16.1 (kedacore/keda ``config/crd/bases``). No package release
exists for operator 0.78, so the 0.79.2 schema is narrowed by the fields and values 0.79
added (prometheus-operator ``example/prometheus-operator-crd``, v0.78.2 against v0.79.2):
after that, an object that the pinned operator's CRD would prune fails here too.
``tests/control/test_crd_schemas.py`` checks every field path against an inventory read
from the pinned upstream CRDs, and against ``../shared/reference`` where it exists.

The packages ship pydantic models; their JSON schema (``model_json_schema``) is normalised
to what the API server checks: optional fields are plain (not ``anyOf [..., null]``),
``metadata`` is left to the API server (as in the CRDs), and objects with declared
properties reject unknown fields, which is how strict field validation (kubectl's default)
reports what structural pruning would drop.
"""

from __future__ import annotations

import copy
import functools
import importlib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from scalelab.errors import ConfigError, MissingDependencyError
from scalelab.schema_errors import kubectl_path, schema_error


@dataclass(frozen=True, kw_only=True)
class CrdSource:
    """Where the schema of one custom resource kind comes from, and which release it must be."""

    api_version: str
    kind: str
    distribution: str       # the PyPI distribution that ships the model
    series: str             # the package releases that match the pinned upstream: "2.16."
    module: str             # the module holding the model class
    model: str              # the model class (pydantic)
    upstream: str           # the upstream release the pinned chart installs
    package_release: str    # the upstream release the package was generated from
    #: Property paths (``[]`` for list items) the package's release has and ``upstream`` lacks.
    not_in_upstream: tuple[str, ...] = ()
    #: Enum values, by property path, the package's release accepts and ``upstream`` does not.
    values_not_in_upstream: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def pin(self) -> str:
        """What to install when the wrong release (or none) is there."""
        return f"{self.distribution}=={self.series}*"


def _keda(kind: str) -> CrdSource:
    return CrdSource(api_version="keda.sh/v1alpha1", kind=kind, model=kind,
                     distribution="cloudcoil-models-keda", series="2.16.",
                     module="cloudcoil.models.keda.v1alpha1", upstream="KEDA 2.16.0",
                     package_release="KEDA 2.16.1")


#: Added in prometheus-operator v0.79.0 (read from the v0.78.2 and v0.79.2 CRDs).
_OPERATOR_079 = ("spec.fallbackScrapeProtocol", "spec.selectorMechanism")


def _operator(kind: str, *added: str) -> CrdSource:
    return CrdSource(api_version="monitoring.coreos.com/v1", kind=kind, model=kind,
                     distribution="cloudcoil-models-prometheus-operator", series="0.79.2.",
                     module="cloudcoil.models.prometheus_operator.v1",
                     upstream="prometheus-operator v0.78.2 (kube-prometheus-stack 66.3.0)",
                     package_release="prometheus-operator v0.79.2",
                     not_in_upstream=(*_OPERATOR_079, *added),
                     values_not_in_upstream={"spec.scrapeProtocols[]": ("PrometheusText1.0.0",)})


SOURCES: dict[tuple[str, str], CrdSource] = {
    (s.api_version, s.kind): s for s in (
        _keda("ScaledObject"), _keda("TriggerAuthentication"),
        _operator("PodMonitor", "spec.podMetricsEndpoints[].portNumber"),
        _operator("ServiceMonitor"),
    )
}


def source(api_version: object, kind: object) -> CrdSource:
    """The source for ``(apiVersion, kind)``; a ConfigError naming the supported ones if none."""
    try:
        return SOURCES[(str(api_version), str(kind))]
    except KeyError:
        known = ", ".join(f"{a} {k}" for a, k in SOURCES)
        raise ConfigError(f"no schema for apiVersion {api_version!r} kind {kind!r}",
                          field="apiVersion", fix=f"use one of: {known}") from None


# -- loading and normalising ----------------------------------------------------------------

def _check_release(src: CrdSource) -> None:
    try:
        version = metadata.version(src.distribution)
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            f"{src.distribution} is not installed: {src.kind} manifests cannot be validated",
            fix=f"pip install '{src.pin}' (or reinstall scalelab: pip install -e .)") from None
    if not version.startswith(src.series):
        raise MissingDependencyError(
            f"{src.distribution} {version} is installed, but the pinned chart installs "
            f"{src.upstream}: its {src.kind} schema would accept fields the cluster prunes",
            fix=f"pip install '{src.pin}'")


def _model(src: CrdSource) -> Any:
    _check_release(src)
    with warnings.catch_warnings():
        # The generated modules trip pydantic's "field shadows an attribute" warnings.
        warnings.simplefilter("ignore")
        module = importlib.import_module(src.module)
    return getattr(module, src.model)


_NAMED = ("properties", "$defs", "patternProperties")  # keys are field/definition names
_NOISE = ("title", "default")


def _plain(node: Any) -> Any:
    """Drop pydantic's ``null`` alternatives, titles and defaults (no validation meaning)."""
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if not isinstance(node, dict):
        return node
    alts = node.get("anyOf")
    if isinstance(alts, list):
        kept = [a for a in alts if a != {"type": "null"}]
        rest = {k: v for k, v in node.items() if k != "anyOf" and k not in _NOISE}
        if len(kept) == 1:
            return _plain({**kept[0], **rest})
        return {**_plain(rest), "anyOf": _plain(kept)}
    return {k: ({n: _plain(d) for n, d in v.items()} if k in _NAMED and isinstance(v, dict)
                else _plain(v))
            for k, v in node.items() if k not in _NOISE}


def resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with its ``$ref`` (into ``schema['$defs']``) followed."""
    while "$ref" in node:
        node = schema["$defs"][str(node["$ref"]).rsplit("/", 1)[-1]]
    return dict(node) if not isinstance(node, dict) else node


def node_at(schema: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The (resolved) schema node of a property path such as ``spec.triggers[].type``."""
    node = resolve(schema, schema)
    for part in path.split("."):
        name, items = part.removesuffix("[]"), part.endswith("[]")
        node = resolve(schema, node["properties"][name])
        if items:
            node = resolve(schema, node["items"])
    return node


def _narrow(schema: dict[str, Any], src: CrdSource) -> None:
    """Remove what the package's newer release added, so the pinned release's verdict holds."""
    try:
        for path in src.not_in_upstream:
            parent, _, name = path.rpartition(".")
            del node_at(schema, parent)["properties"][name]
        for path, values in src.values_not_in_upstream.items():
            node = node_at(schema, path)
            node["enum"] = [v for v in node["enum"] if v not in values]
    except KeyError as exc:
        raise MissingDependencyError(
            f"{src.distribution} has no field {exc} that {src.package_release} added: not the "
            "release scalelab was checked with", fix=f"pip install '{src.pin}'") from None


def _strict(node: Any) -> None:
    """Objects with declared properties reject unknown fields (in place)."""
    if isinstance(node, dict):
        if (isinstance(node.get("properties"), dict) and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)


@functools.cache
def _schema(api_version: str, kind: str) -> dict[str, Any]:
    src = source(api_version, kind)
    raw = _model(src).model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _plain(raw)
    schema["properties"]["metadata"] = {"type": "object"}
    schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    _narrow(schema, src)
    _strict(schema)
    return schema


def schema(api_version: str, kind: str) -> dict[str, Any]:
    """The strict JSON schema (draft 2020-12) of ``kind`` in the pinned upstream release."""
    return copy.deepcopy(_schema(api_version, kind))


@functools.cache
def validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    """A (cached) validator for :func:`schema`."""
    return jsonschema.Draft202012Validator(_schema(api_version, kind))


# -- validating -----------------------------------------------------------------------------

def first_error(doc: Mapping[str, Any]) -> jsonschema.ValidationError | None:
    """The most relevant schema violation of ``doc`` (by its apiVersion/kind), or None."""
    v = validator(str(doc.get("apiVersion")), str(doc.get("kind")))
    return jsonschema.exceptions.best_match(v.iter_errors(doc))


def _generic(parts: Iterable[object]) -> str:
    """``spec.endpoints[0].port`` -> ``spec.endpoints[].port`` (the spelling of the tables)."""
    return "".join("[]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def _newer_only(err: jsonschema.ValidationError, src: CrdSource) -> tuple[str, str] | None:
    """(what, field) of a field or value the package's release has and the pinned one lacks."""
    at = _generic(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set((err.schema or {}).get("properties", {}))
        for extra in sorted(k for k in err.instance if k not in known):
            if f"{at}.{extra}".lstrip(".") in src.not_in_upstream:
                return (f"the field {extra}",
                        kubectl_path([*err.absolute_path, extra]))
    if err.validator == "enum" and err.instance in src.values_not_in_upstream.get(at, ()):
        return f"the value {err.instance!r}", kubectl_path(err.absolute_path)
    return None


def validate_resource(doc: Mapping[str, Any], *, file: str | Path,
                      name: str | None = None) -> None:
    """Raise a ConfigError (file, field, fix) if ``doc`` breaks its kind's pinned CRD schema."""
    kind = str(doc.get("kind"))
    try:
        src = source(doc.get("apiVersion"), kind)
    except ConfigError as exc:
        raise ConfigError(exc.message, file=str(file), field="apiVersion", fix=exc.fix) from None
    err = first_error(doc)
    if err is None:
        return
    meta = doc.get("metadata")
    name = name or (meta.get("name") if isinstance(meta, dict) else None) or "?"
    newer = _newer_only(err, src)
    if newer is not None:
        what, where = newer
        raise ConfigError(
            f"{kind}/{name}: {what} exists only from {src.package_release}; the pinned "
            f"{src.upstream} does not know it (its CRD prunes the field or rejects the value)",
            file=str(file), field=where,
            fix="remove it, or raise the pinned chart in manifests/cluster/charts.yaml and "
                "the schema package in pyproject.toml together")
    raise schema_error(err, file=str(file), kind=kind, name=name)


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a manifest file (ConfigError with the file if unreadable)."""
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the manifest: {exc}", file=str(path),
                          fix="pass an existing, valid YAML file") from exc
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise ConfigError(f"document {i} is a {type(d).__name__}, not a mapping",
                              file=str(path), fix="each YAML document must be a Kubernetes object")
    return docs


def validate_file(path: Path, *, kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Validate every document of a custom-resource manifest file; return the documents.

    ``kinds`` limits the accepted kinds (e.g. ``("PodMonitor", "ServiceMonitor")`` for
    ``manifests/cluster/monitors.yaml``).
    """
    docs = load_documents(Path(path))
    for i, doc in enumerate(docs):
        if kinds is not None and doc.get("kind") not in kinds:
            raise ConfigError(f"document {i} is a {doc.get('kind')!r}", file=str(path),
                              field="kind", fix=f"this file holds only {', '.join(kinds)}")
        validate_resource(doc, file=path)
    return docs
