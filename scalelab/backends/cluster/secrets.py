"""The per-run broker Secret of the cluster backends (``scalelab.credentials``), pure.

At bring-up, before the stack, the backend reads the Secret back if the namespace already
has one (a stack left running by an interrupted run keeps the password its broker was
created with: RabbitMQ makes its default user on first boot only), else generates a
random password, and applies the Namespace and the Secret with ``kubectl apply -f -``: the
password goes through stdin, never onto a command line, into a file or into the repo.
Server-side apply, so no ``last-applied-configuration`` annotation repeats the data.

The Secret's URLs name the broker's Service by its cluster DNS name in the stack's
namespace, so KEDA's operator (in its own namespace) reaches it as the pods do.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from scalelab.backends.cluster.settings import PART_OF, RABBITMQ_DEPLOYMENT, RUN_ID_LABEL
from scalelab.credentials import (
    PASSWORD_KEY,
    SECRET_KEYS,
    SECRET_NAME,
    USERNAME_KEY,
    BrokerCredentials,
)
from scalelab.errors import BackendError

#: The broker Service's ports (manifests/base/rabbitmq.yaml).
AMQP_PORT = 5672
MANAGEMENT_PORT = 15672


def service_host(namespace: str) -> str:
    """The broker Service's DNS name, reachable from every namespace (KEDA's too)."""
    return f"{RABBITMQ_DEPLOYMENT}.{namespace}.svc.cluster.local"


def secret_data(creds: BrokerCredentials, *, namespace: str) -> dict[str, str]:
    """The Secret's data for the stack in ``namespace`` (in-cluster URLs)."""
    host = service_host(namespace)
    return creds.secret_data(amqp_url=creds.amqp_url(host=host, port=AMQP_PORT),
                             management_url=creds.management_url(host=host,
                                                                 port=MANAGEMENT_PORT))


def credentials_objects(creds: BrokerCredentials, *, namespace: str, run_id: str = ""
                        ) -> list[dict[str, Any]]:
    """The Namespace (the Secret needs it before the stack creates it; the stack's apply
    of the same Namespace then only adds to it) and the Secret, as one apply."""
    labels = {**PART_OF, **({RUN_ID_LABEL: run_id} if run_id else {})}
    data = secret_data(creds, namespace=namespace)
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": namespace, "labels": labels}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": SECRET_NAME, "namespace": namespace, "labels": dict(PART_OF)},
         "data": {k: base64.b64encode(v.encode()).decode("ascii") for k, v in data.items()}},
    ]


def read_credentials(stdout: str, *, namespace: str) -> BrokerCredentials | None:
    """The credentials of an existing Secret (``kubectl get secret -o json`` output; empty
    when there is none). A Secret scalelab did not write (keys missing, undecodable)
    is refused: the broker's user cannot be known from it."""
    if not stdout.strip():
        return None
    fix = (f"delete it (`kubectl --namespace {namespace} delete secret {SECRET_NAME}`) "
           "and bring the stack up again")
    try:
        raw = json.loads(stdout).get("data") or {}
        data = {k: base64.b64decode(v, validate=True).decode() for k, v in raw.items()}
    except (ValueError, AttributeError, binascii.Error) as err:
        raise BackendError(f"Secret {namespace}/{SECRET_NAME} cannot be read: {err}",
                           fix=fix) from None
    missing = [k for k in SECRET_KEYS if not data.get(k)]
    if missing:
        raise BackendError(f"Secret {namespace}/{SECRET_NAME} lacks {', '.join(missing)}",
                           fix=fix)
    creds = BrokerCredentials(username=data[USERNAME_KEY], password=data[PASSWORD_KEY])
    if secret_data(creds, namespace=namespace) != data:
        raise BackendError(f"Secret {namespace}/{SECRET_NAME} does not hold the URLs of "
                           f"{service_host(namespace)} for its user", fix=fix)
    return creds


def local_urls(creds: BrokerCredentials, *, amqp_port: int, management_port: int
               ) -> tuple[str, str]:
    """The AMQP and management URLs of the port-forwarded broker on 127.0.0.1."""
    return (creds.amqp_url(host="127.0.0.1", port=amqp_port),
            creds.management_url(host="127.0.0.1", port=management_port))
