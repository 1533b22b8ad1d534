"""KEDA's ``rabbitmq`` scaler: metadata parsing, the metric, the activity, and the fetch.

Follows kedacore/keda ``pkg/scalers/rabbitmq_scaler.go`` (``rabbitMQMetadata`` with its
``keda:"..."`` tags as read by ``pkg/scalers/scalersconfig/typed_config.go``,
``Validate``/``validateTrigger``, ``getQueueStatus``, ``getVhostAndPathFromURL``,
``GetMetricSpecForScaling``, ``GetMetricsAndActivity``). The computation is pure
(``compute``); I/O sits behind ``fetch_http``/``fetch_amqp`` returning a ``QueueStatus``.

Versions (docs/replay.md, "Versions"): newer than the pinned KEDA 2.16, which knows only
QueueLength and MessageRate. The three rate modes are KEDA 2.18's (#6933), the
ExpectedQueueConsumptionTime empty-queue rule is main's (#8033), the metric conversion
(``quantity_milli``) 2.20's (#7534) with main's negative clamp (#7889).

Not emulated: TLS client certificates, OAuth2 and Azure workload identity (parsed and
validated where they affect errors, never used to connect).
"""

from __future__ import annotations

import base64
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

QUEUE_LENGTH = "QueueLength"
MESSAGE_RATE = "MessageRate"
DELIVER_GET_RATE = "DeliverGetRate"
PUBLISHED_TO_DELIVERED_RATIO = "PublishedToDeliveredRatio"
EXPECTED_QUEUE_CONSUMPTION_TIME = "ExpectedQueueConsumptionTime"
MODES = (QUEUE_LENGTH, MESSAGE_RATE, DELIVER_GET_RATE, PUBLISHED_TO_DELIVERED_RATIO,
         EXPECTED_QUEUE_CONSUMPTION_TIME)
HTTP_ONLY_MODES = MODES[1:]
#: rabbitmq_scaler.go defaultRabbitMQQueueLength
DEFAULT_QUEUE_LENGTH = 20.0
_UNKNOWN = "Unknown"


class ScalerError(ValueError):
    """A metadata problem, worded as KEDA words it; ``param`` names the metadata key."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


@dataclass(frozen=True, kw_only=True)
class RabbitMQMetadata:
    """The parsed trigger (rabbitmq_scaler.go ``rabbitMQMetadata``)."""

    queue_name: str
    mode: str
    value: float
    activation_value: float
    host: str | None            # None when parsed without the resolved env (validation only)
    protocol: str               # http | amqp (auto is resolved from the host's scheme)
    vhost_name: str
    use_regex: bool
    exclude_unacknowledged: bool
    page_size: int
    operation: str
    timeout_ms: int
    trigger_index: int
    metric_type: str            # AverageValue (default) | Value

    @property
    def metric_name(self) -> str:
        """``s<index>-rabbitmq-<queue>`` (GenerateMetricNameWithIndex + NormalizeString)."""
        return f"s{self.trigger_index}-" + normalize_string(
            "rabbitmq-" + urllib.parse.quote_plus(self.queue_name))


def normalize_string(s: str) -> str:
    """kedacore/keda ``pkg/util/normalize_string.go``: '/', '.', ':' and '%' become '-'."""
    for old in ("/", ".", ":", "%"):
        s = s.replace(old, "-")
    return s.replace("(", "-").replace(")", "-").replace('"', "-").replace(" ", "-")


def _float(meta: Mapping[str, str], name: str) -> float:
    raw = meta.get(name)
    if raw is None or raw == "":
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise ScalerError(f'unable to set param "{name}" value "{raw}": '
                          f"strconv.ParseFloat: parsing \"{raw}\": invalid syntax",
                          param=name) from None


def _bool(meta: Mapping[str, str], name: str) -> bool:
    raw = meta.get(name)
    if raw is None or raw == "":
        return False
    low = raw.lower()
    if raw in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if raw in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ScalerError(f'unable to set param "{name}" value "{raw}": strconv.ParseBool: '
                      f'parsing "{low}": invalid syntax', param=name)


def _int(meta: Mapping[str, str], name: str, default: int) -> int:
    raw = meta.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ScalerError(f'unable to set param "{name}" value "{raw}": invalid syntax',
                          param=name) from None


def parse_metadata(
    metadata: Mapping[str, str], *, resolved_env: Mapping[str, str] | None,
    auth_params: Mapping[str, str] | None = None, trigger_index: int = 0,
    metric_type: str | None = None,
) -> RabbitMQMetadata:
    """Parse and validate trigger metadata as ``parseRabbitMQMetadata`` + ``Validate`` do.

    ``resolved_env`` is the target container's env for ``*FromEnv`` keys; ``None`` skips
    the resolution (offline validation: only checks that a host is configured at all).
    ``auth_params`` are the TriggerAuthentication's parameters
    (``scalelab.control.keda.auth_params``); offline their values are empty strings: the
    parameter is given, its value comes from a Secret when the loop runs.
    """
    auth = auth_params or {}
    meta = dict(metadata)
    if "queueName" not in meta:
        raise ScalerError('error parsing RabbitMQ metadata: missing required parameter '
                          '"queueName" in [triggerMetadata]', param="queueName")
    raw = _read_fields(meta, auth, resolved_env)
    _validate(raw, auth)
    _validate_trigger(raw)
    if raw.operation not in ("sum", "avg", "max") and raw.use_regex:
        raise ScalerError(f"operation mode {raw.operation} must be one of sum, avg, max",
                          param="operation")
    # GetMetricTargetType: empty means AverageValue; Utilization is for cpu/memory only.
    mtype = metric_type or "AverageValue"
    if mtype not in ("AverageValue", "Value"):
        raise ScalerError(f"metricType {mtype!r} is not supported by this scaler",
                          param="metricType")
    return RabbitMQMetadata(
        queue_name=meta["queueName"], mode=raw.mode, value=raw.value,
        activation_value=raw.activation, host=raw.host, protocol=raw.protocol,
        vhost_name=raw.vhost, use_regex=raw.use_regex,
        exclude_unacknowledged=raw.exclude_unacked, page_size=raw.page_size,
        operation=raw.operation, timeout_ms=raw.timeout, trigger_index=trigger_index,
        metric_type=mtype,
    )


@dataclass(kw_only=True)
class _Fields:
    """``rabbitMQMetadata`` as read from its ``keda`` tags, before ``Validate`` settles the
    protocol and ``validateTrigger`` the mode and value (hence mutable)."""

    host: str | None
    protocol: str
    vhost: str
    mode: str
    queue_length: float
    value: float
    activation: float
    use_regex: bool
    exclude_unacked: bool
    page_size: int
    operation: str
    timeout: int
    tls: str
    username: str
    password: str


def _resolve_host(meta: Mapping[str, str], auth: Mapping[str, str],
                  resolved_env: Mapping[str, str] | None) -> str | None:
    """``host``: triggerMetadata, then authParams, then resolvedEnv[hostFromEnv]; None when
    it is only known once the loop runs (offline, from an env var or a Secret)."""
    host: str | None = meta.get("host") or auth.get("host")
    if host:
        return host
    if "hostFromEnv" in meta:
        if resolved_env is None:
            return None
        host = resolved_env.get(meta["hostFromEnv"]) or None
        if host is None:
            raise ScalerError(
                'error parsing RabbitMQ metadata: missing required parameter "host" in '
                f"[triggerMetadata authParams resolvedEnv] (env var {meta['hostFromEnv']} "
                "is not set in the target container)", param="hostFromEnv")
        return host
    if resolved_env is None and "host" in auth:
        return None
    raise ScalerError('error parsing RabbitMQ metadata: missing required parameter "host" '
                      "in [triggerMetadata authParams resolvedEnv]", param="host")


def _read_fields(meta: Mapping[str, str], auth: Mapping[str, str],
                 resolved_env: Mapping[str, str] | None) -> _Fields:
    """Each field from where its ``keda`` tag says (with the tag's default)."""
    host = _resolve_host(meta, auth, resolved_env)
    env = resolved_env or {}
    # username/password: authParams, then resolvedEnv[<name>FromEnv]
    username = auth.get("username") or env.get(meta.get("usernameFromEnv", ""), "")
    password = auth.get("password") or env.get(meta.get("passwordFromEnv", ""), "")
    if resolved_env is None:  # offline: a *FromEnv key or an auth parameter counts as given
        username = username or meta.get("usernameFromEnv", "") or (
            "username" if "username" in auth else "")
        password = password or meta.get("passwordFromEnv", "") or (
            "password" if "password" in auth else "")
    fields = _Fields(
        host=host, protocol=meta.get("protocol") or auth.get("protocol") or "auto",
        vhost=meta.get("vhostName") or auth.get("vhostName") or "",
        mode=meta.get("mode") or _UNKNOWN, queue_length=_float(meta, "queueLength"),
        value=_float(meta, "value"), activation=_float(meta, "activationValue"),
        use_regex=_bool(meta, "useRegex"), exclude_unacked=_bool(meta, "excludeUnacknowledged"),
        page_size=_int(meta, "pageSize", 100), operation=meta.get("operation") or "sum",
        timeout=_int(meta, "timeout", 0), tls=auth.get("tls") or "disable",
        username=username, password=password)
    _bool(meta, "unsafeSsl")  # parsed for its errors; TLS is not emulated
    return fields


def _auto_protocol(host: str | None) -> str:
    """``Validate``'s protocol auto: amqp for amqp(s)://, http for http(s)://."""
    if host is None:
        raise ScalerError("protocol auto needs the host URL's scheme to pick http or amqp; "
                          "set protocol: http explicitly", param="protocol")
    scheme = urllib.parse.urlsplit(host).scheme
    if scheme in ("amqp", "amqps"):
        return "amqp"
    if scheme in ("http", "https"):
        return "http"
    raise ScalerError(f"unknown host URL scheme: `{scheme}`", param="host")


def _validate(raw: _Fields, auth: Mapping[str, str]) -> None:
    """``rabbitMQMetadata.Validate`` (up to ``validateTrigger``); resolves protocol auto."""
    if raw.protocol not in ("amqp", "http", "auto"):
        raise ScalerError("the protocol has to be either `amqp`, `http`, or `auto` but is "
                          f"`{raw.protocol}`", param="protocol")
    if raw.tls not in ("enable", "disable"):
        raise ScalerError(f"incorrect value for TLS given: {raw.tls}", param="tls")
    if bool(auth.get("cert")) != bool(auth.get("key")):
        raise ScalerError("both key and certificate must be provided", param="cert")
    if raw.page_size < 1:
        raise ScalerError("pageSize should be 1 or greater", param="pageSize")
    if (raw.username or raw.password) and not (raw.username and raw.password):
        raise ScalerError("username and password must be given together", param="username")
    if raw.protocol == "auto":
        raw.protocol = _auto_protocol(raw.host)
    if raw.protocol == "amqp" and auth.get("workloadIdentityResource"):
        raise ScalerError("workload identity is not supported for the AMQP protocol at the "
                          "moment", param="protocol")
    if raw.timeout < 0:
        raise ScalerError(f"timeout must be greater than 0: {raw.timeout}", param="timeout")
    if raw.use_regex and raw.protocol != "http":
        raise ScalerError("configure useRegex=true only with HTTP protocol", param="useRegex")
    if raw.exclude_unacked and raw.protocol != "http":
        raise ScalerError("configure excludeUnacknowledged=true only with HTTP protocol",
                          param="excludeUnacknowledged")


def _validate_trigger(raw: _Fields) -> None:
    """``rabbitMQMetadata.validateTrigger``: settle mode and value."""
    if raw.queue_length == 0 and raw.mode == _UNKNOWN and raw.value == 0:
        raw.mode, raw.value = QUEUE_LENGTH, DEFAULT_QUEUE_LENGTH
        return
    if raw.queue_length != 0 and (raw.mode != _UNKNOWN or raw.value != 0):
        raise ScalerError("queueLength is deprecated; use mode and value", param="queueLength")
    if raw.queue_length != 0:
        raw.mode, raw.value = QUEUE_LENGTH, raw.queue_length
        return
    if raw.mode == _UNKNOWN:
        raise ScalerError("mode must be specified", param="mode")
    if raw.value == 0:
        raise ScalerError("value must be specified", param="value")
    if raw.mode not in MODES:
        raise ScalerError(f"trigger mode {raw.mode} must be one of " + ", ".join(MODES[:-1])
                          + f" or {MODES[-1]}", param="mode")
    if raw.mode in HTTP_ONLY_MODES and raw.protocol != "http":
        raise ScalerError(f"protocol {raw.protocol} not supported; must be HTTP to use "
                          f"trigger mode {raw.mode}", param="protocol")
    if raw.protocol == "amqp" and raw.timeout != 0:
        raise ScalerError(f"AMQP protocol doesn't support custom timeouts: {raw.timeout}",
                          param="timeout")


# -- the computation ------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class QueueStatus:
    """What ``getQueueStatus`` returns: messages counted per settings, and the two rates."""

    messages: int
    publish_rate: float = 0.0
    deliver_get_rate: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ScalerResult:
    """One poll of one trigger: the external metric value, the activity, or the error.

    ``value_milli`` is the metric as KEDA serves it to the HPA: a ``resource.Quantity``
    (``GenerateMetricInMili``), which the HPA controller reads as ``MilliValue()``: an
    integer from here on, never a float again."""

    value_milli: int | None
    active: bool
    error: str | None = None

    @property
    def value(self) -> float | None:
        """The metric as a number (``keda_scaler_metrics_value`` publishes this)."""
        return None if self.value_milli is None else self.value_milli / 1000


def compute(meta: RabbitMQMetadata, status: QueueStatus) -> ScalerResult:
    """``GetMetricsAndActivity`` without the I/O: the activity from the raw float value,
    the metric as the milli-quantity KEDA serves (``GenerateMetricInMili``)."""
    msgs, pub, dlv, act = float(status.messages), status.publish_rate, status.deliver_get_rate, \
        meta.activation_value
    if meta.mode == QUEUE_LENGTH:
        value, active = msgs, msgs > act
    elif meta.mode == MESSAGE_RATE:
        value, active = pub, pub > act or msgs > act
    elif meta.mode == DELIVER_GET_RATE:
        value, active = dlv, dlv > act
    elif meta.mode == PUBLISHED_TO_DELIVERED_RATIO:
        value = 0.0
        if pub > 0 and dlv == 0:
            value = act
        elif pub > 0 and dlv > 0:
            value = pub / dlv
        active = value > act or (pub > 0 and dlv == 0)
    else:
        value, active = expected_consumption_time(msgs, pub, dlv, act)
    return ScalerResult(value_milli=quantity_milli(value), active=active)


def expected_consumption_time(messages: float, publish_rate: float, deliver_get_rate: float,
                              activation: float) -> tuple[float, bool]:
    """ExpectedQueueConsumptionTime as kedacore/keda main computes it since #8033
    (``pkg/scalers/rabbitmq_scaler.go`` ``GetMetricsAndActivity``, "fix empty queue handling
    during fast drain"): an empty queue is 0 and inactive, whatever the rates (before, an
    idle empty queue was active, so the object never scaled to zero, and a just-drained
    queue read negative); a backlog nobody consumes reads ``activationValue`` and is
    active; otherwise ``(publish - deliver) / deliver + messages / deliver``."""
    if messages == 0:
        eta = 0.0
    elif deliver_get_rate == 0:
        eta = activation
    else:
        eta = (publish_rate - deliver_get_rate) / deliver_get_rate + \
            messages / deliver_get_rate
    return eta, eta > activation or (deliver_get_rate == 0 and messages > 0)


def quantity_milli(value: float) -> int:
    """A scaler value as the milli-quantity KEDA makes of it: kedacore/keda
    ``pkg/scalers/scaler.go`` ``quantityFromFloat64`` (used by ``GenerateMetricInMili`` for
    metric values and ``GetMetricTargetMili`` for HPA targets). NaN and +/-Inf become 0
    (#7534, KEDA 2.20), so do negative values (#7889, main); anything else is formatted with
    3 decimals (Go's ``%.3f``: correctly rounded, ties to even, as Python's ``.3f``) and
    parsed as a quantity, so no int64 overflow for large values.

    KEDA 2.16 instead truncated ``int64(value * 1000)`` and passed negatives on."""
    if math.isnan(value) or math.isinf(value) or value < 0:
        return 0
    return int(Decimal(f"{value:.3f}") * 1000)


def target_milli(meta: RabbitMQMetadata) -> int:
    """The generated HPA's target (``GetMetricSpecForScaling``: ``GetMetricTargetMili``)."""
    return quantity_milli(meta.value)


def check_target(meta: RabbitMQMetadata, *, metadata: Mapping[str, str]) -> None:
    """Refuse offline a ``value`` whose target ``quantity_milli`` makes 0 (NaN, Inf, a
    negative number, below 0.0005): KEDA parses it, then the API server refuses the HPA it
    generates (a target must be positive), so the ScaledObject never works."""
    milli_target = target_milli(meta)
    if milli_target <= 0:
        param = "queueLength" if metadata.get("queueLength") else "value"
        raise ScalerError(f"{param} {metadata.get(param)!r} gives the generated HPA a target "
                          f"of {milli_target} (KEDA keeps 3 decimals and turns NaN, Inf and "
                          "negative values into 0); an HPA target must be positive",
                          param=param)


def status_from_queue_info(meta: RabbitMQMetadata, info: Mapping[str, object]) -> QueueStatus:
    """HTTP branch of ``getQueueStatus`` from a management API queue document."""
    stats = info.get("message_stats") or {}
    assert isinstance(stats, Mapping)
    pub = (stats.get("publish_details") or {}).get("rate", 0.0)
    dlv = (stats.get("deliver_get_details") or {}).get("rate", 0.0)
    key = "messages_ready" if meta.exclude_unacknowledged else "messages"
    return QueueStatus(messages=int(info.get(key) or 0),  # type: ignore[call-overload]
                       publish_rate=float(pub), deliver_get_rate=float(dlv))


def compose_queues(meta: RabbitMQMetadata, items: list[Mapping[str, object]]) -> dict[str, object]:
    """``getComposedQueue`` for useRegex: sum / avg (integer division for counts) / max."""
    def rate(q: Mapping[str, object], k: str) -> float:
        stats = q.get("message_stats") or {}
        assert isinstance(stats, Mapping)
        return float((stats.get(k) or {}).get("rate", 0.0))

    if not items:
        return {"messages": 0, "messages_ready": 0}
    msgs = [int(q.get("messages") or 0) for q in items]  # type: ignore[call-overload]
    ready = [int(q.get("messages_ready") or 0) for q in items]  # type: ignore[call-overload]
    pubs = [rate(q, "publish_details") for q in items]
    dlvs = [rate(q, "deliver_get_details") for q in items]
    if meta.operation == "sum":
        m, r, p, d = sum(msgs), sum(ready), sum(pubs), sum(dlvs)
    elif meta.operation == "avg":
        n = len(items)
        m, r, p, d = sum(msgs) // n, sum(ready) // n, sum(pubs) / n, sum(dlvs) / n
    else:
        m, r, p, d = max(msgs), max(ready), max(pubs), max(dlvs)
    return {"messages": m, "messages_ready": r,
            "message_stats": {"publish_details": {"rate": p}, "deliver_get_details": {"rate": d}}}


# -- I/O ------------------------------------------------------------------------------------

#: ``(url, timeout_s) -> (status code, body)``; basic-auth credentials may be in the URL.
HttpGet = Callable[[str, float], tuple[int, bytes]]


def urllib_get(url: str, timeout: float) -> tuple[int, bytes]:
    """Default ``HttpGet``: GET with the URL's userinfo as basic auth, as Go's client does."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    req = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        cred = f"{user}:{urllib.parse.unquote(parts.password or '')}"
        req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (127.0.0.1)
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def vhost_and_path(raw_path: str, vhost_name: str) -> tuple[str, str]:
    """``getVhostAndPathFromURL``: the last path segment is the vhost, the rest a prefix."""
    parts = raw_path.split("/")
    vhost = "/" + parts[-1]
    prefix = "/".join(p for p in parts[:-1] if p)
    prefix = "/" + prefix if prefix else ""
    if vhost_name:
        vhost = "/" + urllib.parse.quote_plus(vhost_name)
    if vhost in ("", "/"):
        vhost = "/%2F"
    return vhost, prefix


def queue_url(meta: RabbitMQMetadata) -> str:
    """The management API URL ``getQueueInfoViaHTTP`` requests."""
    assert meta.host is not None
    parts = urllib.parse.urlsplit(meta.host)
    vhost, prefix = vhost_and_path(parts.path, meta.vhost_name)
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, prefix, "", ""))
    if meta.use_regex:
        return (f"{base}/api/queues{vhost}?page=1&use_regex=true&pagination=false"
                f"&name={urllib.parse.quote_plus(meta.queue_name)}&page_size={meta.page_size}")
    return f"{base}/api/queues{vhost}/{urllib.parse.quote_plus(meta.queue_name)}"


_ANONYMIZE = re.compile(r"([^ /:]+):([^/:]+)@")


def anonymize(message: str) -> str:
    """``anonymizeRabbitMQError``: hide credentials in URLs."""
    return _ANONYMIZE.sub("user:password@", f"error inspecting RabbitMQ: {message}")


def fetch_http(meta: RabbitMQMetadata, *, http_get: HttpGet = urllib_get,
               timeout: float = 3.0) -> QueueStatus:
    """HTTP branch of ``getQueueStatus`` (raises ``ScalerError`` with KEDA's wording)."""
    url = queue_url(meta)
    if meta.timeout_ms:
        timeout = meta.timeout_ms / 1000
    try:
        code, body = http_get(url, timeout)
    except OSError as exc:
        raise ScalerError(anonymize(f"Get {url!r}: {exc}")) from exc
    if code != 200:
        raise ScalerError(anonymize(f"error requesting RabbitMQ API status: {code}, "
                                    f"response: {body.decode(errors='replace')}, from: {url}"))
    doc = json.loads(body)
    if meta.use_regex:
        if int(doc.get("page_count", 0)) > 1:
            raise ScalerError(anonymize("regex matches more queues than can be recovered at once"))
        doc = compose_queues(meta, list(doc.get("items") or []))
    return status_from_queue_info(meta, doc)


def fetch_amqp(meta: RabbitMQMetadata, *, timeout: float = 3.0) -> QueueStatus:
    """AMQP branch: a passive queue declare counts *ready* messages only (kedacore/keda#638)."""
    import pika  # local: only this branch needs it
    import pika.exceptions

    assert meta.host is not None
    params = pika.URLParameters(meta.host)
    if meta.vhost_name:
        params.virtual_host = meta.vhost_name
    params.socket_timeout = timeout
    params.blocked_connection_timeout = timeout
    params.client_properties = {"connection_name": f"keda-{meta.queue_name}"}
    try:
        conn = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        raise ScalerError(anonymize(f"dial {meta.host}: {exc!r}")) from exc
    try:
        ch = conn.channel()
        ok = ch.queue_declare(queue=meta.queue_name, passive=True)
        return QueueStatus(messages=int(ok.method.message_count))
    except pika.exceptions.AMQPError as exc:
        raise ScalerError(anonymize(repr(exc))) from exc
    finally:
        if conn.is_open:
            conn.close()


def poll(meta: RabbitMQMetadata, *, http_get: HttpGet = urllib_get,
         amqp_fetch: Callable[[RabbitMQMetadata], QueueStatus] | None = None) -> ScalerResult:
    """One ``GetMetricsAndActivity``: fetch then compute; an error yields value None."""
    try:
        if meta.protocol == "http":
            status = fetch_http(meta, http_get=http_get)
        else:
            status = (amqp_fetch or fetch_amqp)(meta)
    except (ScalerError, ValueError, OSError) as exc:
        return ScalerResult(value_milli=None, active=False, error=str(exc))
    return compute(meta, status)
