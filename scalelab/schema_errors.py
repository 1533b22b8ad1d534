"""A JSON-schema violation of a Kubernetes object, as one ``ConfigError``.

Shared by the HPA check (kubernetes-validate, ``scalelab.scaling_manifests``) and the CRD checks
(``scalelab.crds``), so both name the field in kubectl's spelling and say the same thing
about unknown fields. Both import it; it imports neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import jsonschema

from scalelab.errors import ConfigError


def kubectl_path(parts: Iterable[object]) -> str:
    """JSON path in kubectl's spelling: ``spec.metrics[0].resource``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def schema_error(err: jsonschema.ValidationError, *, file: str, kind: str, name: str,
                 prefix: Sequence[object] = ()) -> ConfigError:
    """The ConfigError (file, field, fix) for ``err`` in the object ``kind/name``."""
    parts = list(prefix) + list(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = set((err.schema or {}).get("properties", {}))
        extra = sorted(k for k in err.instance if k not in known)
        where = kubectl_path([*parts, extra[0]]) if extra else kubectl_path(parts)
        return ConfigError(
            f'{kind}/{name}: unknown field "{where}" (the API server rejects it with strict '
            "field validation and would otherwise silently drop it)",
            file=file, field=where,
            fix=f"remove or correct it; known fields here: {', '.join(sorted(known))}")
    where = kubectl_path(parts)
    fix = "see the schema: kubectl explain " + (
        f"{kind.lower()}.{where}".split("[")[0] if where else kind.lower())
    if err.validator == "required":
        fix = "add the missing field"
    elif err.validator == "type":
        fix = f"give it the type {err.validator_value} (quote numbers meant as strings)"
    elif err.validator == "enum":
        fix = f"use one of {err.validator_value}"
    return ConfigError(f"{kind}/{name}: {err.message}", file=file, field=where or None, fix=fix)
