"""KEDA's rabbitmq scaler: cases transcribed from kedacore/keda
``pkg/scalers/rabbitmq_scaler_test.go`` (facts and numbers, not code), then the fetch
against the session's real RabbitMQ (HTTP management API and AMQP passive declare).
"""

from __future__ import annotations

import json
import time

import pika
import pytest

from scalelab.control import rabbitmq_scaler as rmq
from scalelab.waiting import wait_for

HOST = "myHostSecret"
#: rabbitmq_scaler_test.go sampleRabbitMqResolvedEnv
ENV = {HOST: "amqp://user:sercet@somehost.com:5236/vhost", "myUsernameSecret": "user",
       "myPasswordSecret": "Password"}

# rabbitmq_scaler_test.go testRabbitMQMetadata (TestRabbitMQParseMetadata):
# (comment from upstream, metadata, authParams, ERROR or the parsed result). The
# parsed results are read from kedacore/keda pkg/scalers/rabbitmq_scaler.go (main,
# 8b4f083): rabbitMQMetadata's keda tags (host from triggerMetadata, authParams, then
# resolvedEnv[hostFromEnv]; protocol from triggerMetadata or authParams, default auto;
# pageSize 100, operation sum), Validate (auto -> amqp for amqp(s)://, http for
# http(s)://), validateTrigger (nothing set -> QueueLength 20; queueLength N -> QueueLength
# N) and typed_config.go (a timeout number is milliseconds). Upstream's test checks only
# the error; the results are this file's.
ERROR = None   # the case must fail to parse


def parsed(**fields: object) -> dict[str, object]:
    """A parse result: rabbitMQMetadata's defaults for queue "sample" (QueueLength 20,
    no activation, pageSize 100, operation sum, no timeout, no vhost override), with
    ``fields`` over them."""
    return {"queue_name": "sample", "mode": "QueueLength", "value": 20.0,
            "activation_value": 0.0, "vhost_name": "", "use_regex": False,
            "exclude_unacknowledged": False, "page_size": 100, "operation": "sum",
            "timeout_ms": 0, **fields}


PARSE_CASES: list[tuple[str, dict[str, str], dict[str, str], dict[str, object] | None]] = [
    ("nothing passed", {}, {}, ERROR),
    ("properly formed metadata", {"queueLength": "10", "queueName": "sample",
                                  "hostFromEnv": HOST}, {},
     parsed(value=10, host=ENV[HOST], protocol="amqp")),
    ("malformed queueLength", {"queueLength": "AA", "queueName": "sample",
                               "hostFromEnv": HOST}, {}, ERROR),
    ("missing host", {"queueLength": "AA", "queueName": "sample"}, {}, ERROR),
    ("missing queueName", {"queueLength": "10", "hostFromEnv": HOST}, {}, ERROR),
    ("host defined in authParams", {"queueLength": "10", "hostFromEnv": HOST},
     {"host": HOST}, ERROR),
    ("properly formed metadata with http protocol", {"queueLength": "10", "queueName": "sample",
                                                     "host": HOST, "protocol": "http"}, {},
     parsed(value=10, host=HOST, protocol="http")),
    ("queue name with slashes", {"queueLength": "10", "queueName": "namespace/name",
                                 "hostFromEnv": HOST}, {},
     parsed(queue_name="namespace/name", value=10, host=ENV[HOST], protocol="amqp")),
    ("vhost passed", {"vhostName": "myVhost", "queueName": "namespace/name",
                      "hostFromEnv": HOST}, {},
     parsed(queue_name="namespace/name", host=ENV[HOST], protocol="amqp", vhost_name="myVhost")),
    ("vhost passed but empty", {"vhostName": "", "queueName": "namespace/name",
                                "hostFromEnv": HOST}, {},
     parsed(queue_name="namespace/name", host=ENV[HOST], protocol="amqp")),
    ("protocol defined in authParams", {"queueName": "sample", "hostFromEnv": HOST},
     {"protocol": "http"}, parsed(host=ENV[HOST], protocol="http")),
    ("auto protocol and a bad URL", {"queueName": "sample", "host": "something://"}, {}, ERROR),
    ("auto protocol and an HTTP URL", {"queueName": "sample", "host": "http://"}, {},
     parsed(host="http://", protocol="http")),
    ("auto protocol and an HTTPS URL", {"queueName": "sample", "host": "https://"}, {},
     parsed(host="https://", protocol="http")),
    ("queueLength and mode", {"queueLength": "10", "mode": "QueueLength", "queueName": "sample",
                              "host": "https://"}, {}, ERROR),
    ("queueLength and value", {"queueLength": "10", "value": "20", "queueName": "sample",
                               "host": "https://"}, {}, ERROR),
    ("only mode", {"mode": "QueueLength", "queueName": "sample", "host": "https://"}, {}, ERROR),
    ("only value", {"value": "20", "queueName": "sample", "host": "https://"}, {}, ERROR),
    ("mode and value", {"mode": "QueueLength", "value": "20", "queueName": "sample",
                        "host": "https://"}, {}, parsed(host="https://", protocol="http")),
    ("invalid mode", {"mode": "Feelings", "value": "20", "queueName": "sample",
                      "host": "https://"}, {}, ERROR),
    ("invalid value", {"mode": "QueueLength", "value": "lots", "queueName": "sample",
                       "host": "https://"}, {}, ERROR),
    ("queue length amqp", {"mode": "QueueLength", "value": "20", "queueName": "sample",
                           "host": "amqps://"}, {}, parsed(host="amqps://", protocol="amqp")),
    ("message rate amqps", {"mode": "MessageRate", "value": "1000", "queueName": "sample",
                            "host": "amqps://"}, {}, ERROR),
    ("message rate http", {"mode": "MessageRate", "value": "1000", "queueName": "sample",
                           "host": "http://"}, {},
     parsed(mode="MessageRate", value=1000, host="http://", protocol="http")),
    ("deliverGet rate amqp", {"mode": "DeliverGetRate", "value": "1000", "queueName": "sample",
                              "host": "amqp://"}, {}, ERROR),
    ("deliverGet rate https", {"mode": "DeliverGetRate", "value": "1000", "queueName": "sample",
                               "host": "https://"}, {},
     parsed(mode="DeliverGetRate", value=1000, host="https://", protocol="http")),
    ("amqp host and useRegex", {"queueName": "sample", "host": "amqps://", "useRegex": "true"},
     {}, ERROR),
    ("http host and useRegex", {"queueName": "sample", "host": "http://", "useRegex": "true"},
     {}, parsed(host="http://", protocol="http", use_regex=True)),
    ("http valid timeout", {"mode": "QueueLength", "value": "1000", "queueName": "sample",
                            "host": "http://", "timeout": "1000"}, {},
     parsed(value=1000, host="http://", protocol="http", timeout_ms=1000)),
    ("http invalid timeout", {"mode": "QueueLength", "value": "1000", "queueName": "sample",
                              "host": "http://", "timeout": "-10"}, {}, ERROR),
    ("http wrong timeout", {"mode": "QueueLength", "value": "1000", "queueName": "sample",
                            "host": "http://", "timeout": "error"}, {}, ERROR),
    ("amqp timeout", {"mode": "QueueLength", "value": "1000", "queueName": "sample",
                      "host": "amqp://", "timeout": "10"}, {}, ERROR),
    ("pageSize less than 1", {"mode": "MessageRate", "value": "1000", "queueName": "sample",
                              "host": "http://", "useRegex": "true", "pageSize": "-1"}, {}, ERROR),
    ("invalid pageSize", {"mode": "MessageRate", "value": "1000", "queueName": "sample",
                          "host": "http://", "useRegex": "true", "pageSize": "a"}, {}, ERROR),
    ("activationValue passed", {"activationValue": "10", "queueLength": "20",
                                "queueName": "sample", "hostFromEnv": HOST}, {},
     parsed(activation_value=10, host=ENV[HOST], protocol="amqp")),
    ("malformed activationValue", {"activationValue": "AA", "queueLength": "10",
                                   "queueName": "sample", "hostFromEnv": HOST}, {}, ERROR),
    ("http and excludeUnacknowledged", {"mode": "QueueLength", "value": "1000",
                                        "queueName": "sample", "host": "http://",
                                        "useRegex": "true", "excludeUnacknowledged": "true"},
     {},
     parsed(value=1000, host="http://", protocol="http", use_regex=True,
            exclude_unacknowledged=True)),
    ("amqp and excludeUnacknowledged", {"mode": "QueueLength", "value": "1000",
                                        "queueName": "sample", "host": "amqp://",
                                        "useRegex": "true", "excludeUnacknowledged": "true"},
     {}, ERROR),
    ("unsafeSsl true", {"queueName": "sample", "host": "https://", "unsafeSsl": "true"}, {},
     parsed(host="https://", protocol="http")),
    ("unsafeSsl wrong input", {"queueName": "sample", "host": "https://",
                               "unsafeSsl": "random"}, {}, ERROR),
    # testRabbitMQAuthParamData (TestRabbitMQParseAuthParamData), TLS/identity/auth subset
    ("failure, TLS missing cert", {"queueName": "sample", "hostFromEnv": HOST},
     {"tls": "enable", "ca": "caaa", "key": "kee"}, ERROR),
    ("failure, TLS invalid", {"queueName": "sample", "hostFromEnv": HOST},
     {"tls": "yes", "ca": "caaa", "cert": "ceert", "key": "kee"}, ERROR),
    ("success, username and password", {"queueName": "sample", "hostFromEnv": HOST},
     {"username": "user", "password": "PASSWORD"}, parsed(host=ENV[HOST], protocol="amqp")),
    ("failure, username but no password", {"queueName": "sample", "hostFromEnv": HOST},
     {"username": "user"}, ERROR),
    ("success, username and password from env", {"queueName": "sample", "hostFromEnv": HOST,
                                                 "usernameFromEnv": "myUsernameSecret",
                                                 "passwordFromEnv": "myPasswordSecret"}, {},
     parsed(host=ENV[HOST], protocol="amqp")),
    ("failure, password from env but not username", {"queueName": "sample",
                                                     "hostFromEnv": HOST,
                                                     "passwordFromEnv": "myPasswordSecret"},
     {}, ERROR),
    ("failure, WorkloadIdentity not supported for amqp", {"queueName": "sample",
                                                          "hostFromEnv": HOST,
                                                          "protocol": "amqp"},
     {"workloadIdentityResource": "rabbitmq-resource-id"}, ERROR),
]


@pytest.mark.parametrize(("case", "metadata", "auth", "expected"), PARSE_CASES,
                         ids=[c[0] for c in PARSE_CASES])
def test_parse_metadata_upstream_cases(case: str, metadata: dict[str, str],
                                       auth: dict[str, str],
                                       expected: dict[str, object] | None) -> None:
    """rabbitmq_scaler_test.go TestRabbitMQParseMetadata / TestRabbitMQParseAuthParamData:
    the error upstream expects, or else the parsed fields this file expects."""
    if expected is ERROR:
        with pytest.raises(rmq.ScalerError):
            rmq.parse_metadata(metadata, resolved_env=ENV, auth_params=auth)
        return
    meta = rmq.parse_metadata(metadata, resolved_env=ENV, auth_params=auth)
    assert {k: getattr(meta, k) for k in expected} == expected


def test_parse_cases_cover_upstream_tables() -> None:
    # 40 testRabbitMQMetadata entries + the 7 testRabbitMQAuthParamData ones above, 19 of
    # which parse; every one of those has an expected result.
    assert len(PARSE_CASES) == 47
    assert sum(1 for c in PARSE_CASES if c[3] is not ERROR) == 19


@pytest.mark.parametrize("extra", [{}, {"protocol": "http"}])
def test_default_queue_length(extra: dict[str, str]) -> None:
    """rabbitmq_scaler_test.go TestParseDefaultQueueLength: value 20, mode QueueLength."""
    meta = rmq.parse_metadata({"queueName": "sample", "hostFromEnv": HOST, **extra},
                              resolved_env=ENV)
    assert (meta.mode, meta.value) == (rmq.QUEUE_LENGTH, 20.0)
    assert meta.protocol == ("http" if extra else "amqp")  # auto from the amqp:// host


@pytest.mark.parametrize(("queue", "index", "name"), [
    ("sample", 0, "s0-rabbitmq-sample"),
    ("namespace/name", 1, "s1-rabbitmq-namespace-2Fname"),
])
def test_metric_names(queue: str, index: int, name: str) -> None:
    """rabbitmq_scaler_test.go rabbitMQMetricIdentifiers (TestRabbitMQGetMetricSpecForScaling)."""
    meta = rmq.parse_metadata({"queueLength": "10", "queueName": queue, "hostFromEnv": HOST},
                              resolved_env=ENV, trigger_index=index)
    assert meta.metric_name == name


# rabbitmq_scaler_test.go getVhostAndPathFromURLTestData (Test_getVhostAndPathFromURL)
VHOST_CASES = [
    ("myVhost", "", "/myVhost", ""), ("/", "", "/%2F", ""), ("//", "", "/%2F", ""),
    ("", "", "/%2F", ""), ("sub1/myVhost", "", "/myVhost", "/sub1"),
    ("sub1/", "overridenVhost", "/overridenVhost", "/sub1"),
    ("myVhost", "overridenVhost", "/overridenVhost", ""), ("sub1/", "", "/%2F", "/sub1"),
    ("sub1/", "myVhost", "/myVhost", "/sub1"), ("sub1//", "", "/%2F", "/sub1"),
    ("sub1/sub2/myVhost", "", "/myVhost", "/sub1/sub2"),
    ("sub1/sub2/myVhost", "overridenVhost", "/overridenVhost", "/sub1/sub2"),
    ("sub1/sub2/", "", "/%2F", "/sub1/sub2"), ("sub1/sub2/", "myVhost", "/myVhost", "/sub1/sub2"),
    ("sub1/sub2//", "", "/%2F", "/sub1/sub2"),
]


@pytest.mark.parametrize(("raw", "override", "vhost", "prefix"), VHOST_CASES)
def test_vhost_and_path(raw: str, override: str, vhost: str, prefix: str) -> None:
    assert rmq.vhost_and_path(raw, override) == (vhost, prefix)


def _q(messages: int, unacked: int, pub: float, dlv: float) -> dict[str, object]:
    return {"messages": messages, "messages_unacknowledged": unacked,
            "messages_ready": messages - unacked, "name": "evaluate_trials",
            "message_stats": {"publish_details": {"rate": pub},
                              "deliver_get_details": {"rate": dlv}}}


# rabbitmq_scaler_test.go testQueueInfoTestData (TestGetQueueInfo): response -> isActive
QUEUE_INFO_CASES = [
    # queueLength (legacy) 10
    ({"queueLength": "10"}, _q(4, 1, 0, 0), True),
    ({"queueLength": "10"}, _q(1, 1, 0, 0), True),
    ({"queueLength": "10"}, _q(1, 0, 0, 0), True),
    ({"queueLength": "10"}, _q(0, 0, 0, 0), False),
    ({"queueLength": "10"}, _q(0, 0, 1.4, 2), False),
    # mode QueueLength
    ({"value": "100", "mode": "QueueLength"}, _q(4, 1, 0, 1.3), True),
    ({"value": "100", "mode": "QueueLength"}, _q(0, 0, 0, 0), False),
    ({"value": "100", "mode": "QueueLength"}, _q(0, 0, 1.4, 0), False),
    # mode MessageRate
    ({"value": "100", "mode": "MessageRate"}, _q(4, 1, 0, 1.3), True),
    ({"value": "100", "mode": "MessageRate"}, _q(0, 0, 0, 0), False),
    ({"value": "100", "mode": "MessageRate"}, _q(0, 0, 1.4, 0), True),
    # mode DeliverGetRate
    ({"value": "100", "mode": "DeliverGetRate"}, _q(30, 10, 5, 1), True),
    ({"value": "100", "mode": "DeliverGetRate"}, _q(0, 0, 0, 0), False),
    ({"value": "100", "mode": "DeliverGetRate"}, _q(3, 0, 0, 18.5), True),
]


@pytest.mark.parametrize(("extra", "info", "active"), QUEUE_INFO_CASES)
def test_queue_info_activity(extra: dict[str, str], info: dict[str, object],
                             active: bool) -> None:
    """TestGetQueueInfo through a fake management API: URL, metric and activity."""
    seen: list[str] = []

    def http_get(url: str, timeout: float) -> tuple[int, bytes]:
        seen.append(url)
        return 200, json.dumps(info).encode()

    meta = rmq.parse_metadata({"queueName": "evaluate_trials", "hostFromEnv": "plainHost",
                               "protocol": "http", **extra},
                              resolved_env={"plainHost": "http://u:p@127.0.0.1:1/"})
    res = rmq.poll(meta, http_get=http_get)
    assert res.error is None and res.active is active
    assert seen == ["http://u:p@127.0.0.1:1/api/queues/%2F/evaluate_trials"]
    stats = info["message_stats"]
    assert isinstance(stats, dict)
    expected = {"QueueLength": info["messages"],
                "MessageRate": stats["publish_details"]["rate"],
                "DeliverGetRate": stats["deliver_get_details"]["rate"]}[meta.mode]
    assert res.value == expected


def test_error_response_is_anonymized() -> None:
    """TestGetQueueInfo's 401 case: the error carries the body, never the password."""
    meta = rmq.parse_metadata({"queueName": "q", "host": "http://keda:s3cret@127.0.0.1:1/",
                               "mode": "QueueLength", "value": "5"}, resolved_env={})
    res = rmq.poll(meta, http_get=lambda url, t: (401, b"Password is incorrect"))
    assert res.value is None and not res.active
    assert res.error is not None and "Password is incorrect" in res.error
    assert "s3cret" not in res.error and "user:password@" in res.error


def test_exclude_unacknowledged_and_modes_pure() -> None:
    """getQueueStatus / GetMetricsAndActivity arithmetic on one document."""
    info = _q(10, 4, 2.0, 4.0)
    base = {"queueName": "q", "host": "http://h/", "activationValue": "1"}
    m = rmq.parse_metadata({**base, "mode": "QueueLength", "value": "5",
                            "excludeUnacknowledged": "true"}, resolved_env={})
    assert rmq.compute(m, rmq.status_from_queue_info(m, info)).value_milli == 6000  # ready only
    m = rmq.parse_metadata({**base, "mode": "PublishedToDeliveredRatio", "value": "1"},
                           resolved_env={})
    assert rmq.compute(m, rmq.status_from_queue_info(m, info)).value_milli == 500
    m = rmq.parse_metadata({**base, "mode": "ExpectedQueueConsumptionTime", "value": "1"},
                           resolved_env={})
    r = rmq.compute(m, rmq.status_from_queue_info(m, info))
    assert r.value_milli == 2000 and r.active   # (2 - 4) / 4 + 10 / 4


# rabbitmq_scaler_test.go testExpectedQueueConsumptionTimeTestData
# (TestExpectedQueueConsumptionTime, added by kedacore/keda#8033; value 1, activationValue 1):
# (name, response, metric in milli-units, isActive)
EQCT_CASES = [
    ("empty idle queue", _q(0, 0, 0, 0), 0, False),
    ("empty queue with decaying delivery rate", _q(0, 0, 0, 2), 0, False),
    ("backlog without consumers", _q(10, 0, 3, 0), 1000, True),
    ("backlog with consumers", _q(10, 0, 3, 2), 5500, True),
    ("draining backlog", _q(4, 0, 0, 2), 1000, False),
]


@pytest.mark.parametrize(("name", "info", "expected_milli", "active"), EQCT_CASES,
                         ids=[c[0] for c in EQCT_CASES])
def test_expected_queue_consumption_time_upstream_cases(
        name: str, info: dict[str, object], expected_milli: int, active: bool) -> None:
    """kedacore/keda#8033: an empty queue is 0 and inactive whatever the rates, so a
    ScaledObject in this mode can scale to zero (before: the idle empty queue read 1 and was
    active, the just-drained one read -1)."""
    meta = rmq.parse_metadata({"queueName": "evaluate_trials", "hostFromEnv": "plainHost",
                               "protocol": "http", "mode": "ExpectedQueueConsumptionTime",
                               "value": "1", "activationValue": "1"},
                              resolved_env={"plainHost": "http://127.0.0.1:1/"})
    res = rmq.poll(meta, http_get=lambda url, t: (200, json.dumps(info).encode()))
    assert res.error is None
    assert (res.value_milli, res.active) == (expected_milli, active), name


# scaler_test.go TestGenerateMetricInMili / TestGetMetricTargetMili (both through
# quantityFromFloat64, kedacore/keda pkg/scalers/scaler.go): upstream asserts "zero" or
# "positive"; the exact milli-units here are the decimal values written out by hand.
QUANTITY_CASES = [
    ("small value", 100.5, 100_500),
    ("small value (GenerateMetricInMili)", 42.5, 42_500),
    ("large value exceeding int64 milli threshold", 1e18, 10**21),
    ("value just above int64 milli overflow threshold", 9.3e15, 93 * 10**17),
    ("NaN treated as zero", float("nan"), 0),
    ("positive Inf treated as zero", float("inf"), 0),
    ("negative Inf treated as zero", float("-inf"), 0),
    ("negative value treated as zero", -1.0, 0),
    ("large negative value treated as zero", -9.3e15, 0),
    # Go's %.3f rounds the exact binary value, ties to even; 2.16's int64(v*1000) truncated.
    ("1.2345 is 1.23449999... in binary", 1.2345, 1234),
    ("1.0005 is 1.00049999... in binary", 1.0005, 1000),
    ("3.0005 is 3.00050000...02 in binary", 3.0005, 3001),
    ("0.0625 is a tie: to even", 0.0625, 62),
    ("0.1875 is a tie: to even", 0.1875, 188),
    ("below half a milli", 0.0004, 0),
]


@pytest.mark.parametrize(("name", "value", "expected"), QUANTITY_CASES,
                         ids=[c[0] for c in QUANTITY_CASES])
def test_quantity_from_float64(name: str, value: float, expected: int) -> None:
    assert rmq.quantity_milli(value) == expected


def test_non_finite_and_negative_metric_values_become_zero() -> None:
    """GetMetricsAndActivity's value goes through quantityFromFloat64; activity does not."""
    base = {"queueName": "q", "host": "http://h/", "activationValue": "1", "value": "1"}
    ratio = rmq.parse_metadata({**base, "mode": "PublishedToDeliveredRatio"}, resolved_env={})
    res = rmq.compute(ratio, rmq.QueueStatus(messages=5, publish_rate=1e308,
                                             deliver_get_rate=1e-10))  # 1e318: +Inf
    assert res.value_milli == 0 and res.active
    eta = rmq.parse_metadata({**base, "mode": "ExpectedQueueConsumptionTime"}, resolved_env={})
    # draining faster than anything arrives: (0 - 2) / 2 + 1 / 2 = -0.5
    res = rmq.compute(eta, rmq.QueueStatus(messages=1, publish_rate=0, deliver_get_rate=2))
    assert res.value_milli == 0 and not res.active


@pytest.mark.parametrize(("metadata", "param"), [
    ({"mode": "QueueLength", "value": "NaN"}, "value"),
    ({"mode": "QueueLength", "value": "+Inf"}, "value"),
    ({"mode": "QueueLength", "value": "-5"}, "value"),
    ({"mode": "QueueLength", "value": "0.0004"}, "value"),
    ({"queueLength": "-3"}, "queueLength"),
])
def test_a_target_that_becomes_zero_is_refused(metadata: dict[str, str], param: str) -> None:
    """KEDA parses these (Go's ParseFloat reads NaN and Inf too), then its HPA target is 0,
    which the API server refuses: refused offline, naming the key."""
    meta = rmq.parse_metadata({"queueName": "q", "host": "http://h/", **metadata},
                              resolved_env={})
    assert rmq.target_milli(meta) == 0
    with pytest.raises(rmq.ScalerError, match="must be positive") as err:
        rmq.check_target(meta, metadata=metadata)
    assert err.value.param == param
    ok = rmq.parse_metadata({"queueName": "q", "host": "http://h/", "value": "0.0005",
                             "mode": "QueueLength"}, resolved_env={})
    rmq.check_target(ok, metadata={"value": "0.0005"})  # 1m: positive


def test_regex_composition() -> None:
    """getComposedQueue: sum / avg (integer counts) / max over the matched queues."""
    items = [_q(3, 1, 1.0, 0.5), _q(4, 0, 3.0, 1.5)]
    for op, msgs in (("sum", 7), ("avg", 3), ("max", 4)):
        m = rmq.parse_metadata({"queueName": "q.*", "host": "http://h/", "useRegex": "true",
                                "operation": op, "mode": "QueueLength", "value": "5"},
                               resolved_env={})
        body = json.dumps({"items": items, "page_count": 1}).encode()
        urls: list[str] = []
        res = rmq.poll(m, http_get=lambda url, t, b=body, u=urls: (u.append(url), (200, b))[1])
        assert res.value == msgs, op
        assert "use_regex=true" in urls[0] and "name=q.%2A" in urls[0]


# -- the real broker --------------------------------------------------------------------

@pytest.mark.slow
def test_http_and_amqp_against_real_rabbitmq(rabbitmq: object, queue_names: object) -> None:
    """HTTP counts ready + unacked; AMQP (passive declare) only ready (kedacore/keda#638)."""
    amqp_url: str = rabbitmq.amqp_url  # type: ignore[attr-defined]
    mgmt: str = rabbitmq.management_url  # type: ignore[attr-defined]
    queue: str = queue_names.tasks  # type: ignore[attr-defined]
    host = mgmt.replace("http://", "http://guest:guest@") + "/"
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(queue=queue, durable=True)
        for i in range(5):
            ch.basic_publish(exchange="", routing_key=queue, body=f"task {i}".encode())
        ch.basic_qos(prefetch_count=2)
        held = []
        for _ in range(2):  # two tasks "in progress": delivered, not acknowledged
            method, _props, _body = ch.basic_get(queue=queue, auto_ack=False)
            assert method is not None
            held.append(method.delivery_tag)

        http_meta = rmq.parse_metadata({"queueName": queue, "host": host, "protocol": "http",
                                        "mode": "QueueLength", "value": "5"}, resolved_env={})
        # The management plugin refreshes queue stats every collect_statistics_interval.
        ready_meta = rmq.parse_metadata({"queueName": queue, "host": host, "protocol": "http",
                                         "mode": "QueueLength", "value": "5",
                                         "excludeUnacknowledged": "true"}, resolved_env={})
        # Both readings from a refreshed snapshot: a snapshot taken between the publishes
        # and the basic_gets also says 5 in all, but 5 ready.
        res, ready = wait_for(lambda: (rmq.poll(http_meta), rmq.poll(ready_meta)),
                              lambda rr: (rr[0].value, rr[1].value) == (5, 3),
                              what="management API to report 5 messages, 3 ready",
                              expected="5 and 3", timeout=30, interval=0.5)
        assert res.active and res.error is None and ready.error is None
        amqp_meta = rmq.parse_metadata({"queueName": queue, "host": amqp_url,
                                        "mode": "QueueLength", "value": "5"}, resolved_env={})
        assert amqp_meta.protocol == "amqp"
        assert rmq.poll(amqp_meta).value == 3  # unacked tasks are invisible over AMQP

        missing = rmq.parse_metadata({"queueName": queue + "-nope", "host": host,
                                      "protocol": "http"}, resolved_env={})
        err = rmq.poll(missing)
        assert err.value is None and err.error is not None and "404" in err.error
        assert "guest:guest" not in err.error
        for tag in held:
            ch.basic_ack(delivery_tag=tag)
        ch.queue_delete(queue=queue)
    finally:
        conn.close()


@pytest.mark.slow
def test_amqp_missing_queue_is_an_error(rabbitmq: object) -> None:
    meta = rmq.parse_metadata({"queueName": f"absent-{time.time_ns()}",
                               "host": rabbitmq.amqp_url},  # type: ignore[attr-defined]
                              resolved_env={})
    res = rmq.poll(meta)
    assert res.value is None and res.error is not None and "404" in res.error
