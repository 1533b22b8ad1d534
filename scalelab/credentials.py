"""The broker credentials, handed to the stack through ONE Secret on every backend.

``manifests/base`` reads the Secret ``rabbitmq-credentials`` (``SECRET_NAME``): RabbitMQ
its default user (``username``, ``password``), the api and the agent their ``AMQP_URL``
(``amqp-url``); the KEDA ScaledObjects of ``manifests/scaling`` read the management URL
(``management-url``) through a TriggerAuthentication. The Secret carries whole URLs, not
only a user and a password, because KEDA's rabbitmq scaler takes its ``host`` as one URL
with the credentials in it (kedacore/keda ``pkg/scalers/rabbitmq_scaler.go``: ``host``
from triggerMetadata, authParams or resolvedEnv), and the services then need no URL
assembly of their own.

Who fills it in: the cluster backends generate a random password per run
(``BrokerCredentials.generate``; ``scalelab.backends.cluster.secrets`` builds the object and
applies it from stdin, so the password is never on a command line nor in a file); the
local backend supplies the private broker's loopback-only ``guest`` user in memory.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

T = TypeVar("T")

#: The Secret manifests/base and manifests/scaling reference.
SECRET_NAME = "rabbitmq-credentials"
USERNAME_KEY = "username"
PASSWORD_KEY = "password"
AMQP_URL_KEY = "amqp-url"
MANAGEMENT_URL_KEY = "management-url"
#: Every key of the Secret; a manifest referencing another key is a bug (tested).
SECRET_KEYS = (USERNAME_KEY, PASSWORD_KEY, AMQP_URL_KEY, MANAGEMENT_URL_KEY)

#: The user the cluster backends create as RabbitMQ's default user.
DEFAULT_USERNAME = "scalelab"


@dataclass(frozen=True, kw_only=True)
class BrokerCredentials:
    """A RabbitMQ user and password (the password never shows in ``repr``)."""

    username: str
    password: str = field(repr=False)

    @classmethod
    def generate(cls, *, username: str = DEFAULT_USERNAME, nbytes: int = 24
                 ) -> BrokerCredentials:
        """A fresh random password (``secrets.token_urlsafe``: URL-safe, so it goes into
        the URLs unquoted; 24 bytes are 192 bits)."""
        return cls(username=username, password=secrets.token_urlsafe(nbytes))

    def _userinfo(self) -> str:
        return f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"

    def amqp_url(self, *, host: str, port: int = 5672, vhost: str = "/") -> str:
        """``amqp://user:password@host:port/vhost`` (the vhost percent-encoded)."""
        return f"amqp://{self._userinfo()}@{host}:{port}/{quote(vhost, safe='')}"

    def management_url(self, *, host: str, port: int = 15672, scheme: str = "http") -> str:
        """The management API's base URL with the credentials in it (what KEDA's
        ``host`` and ``scalelab.observe.management_session`` take)."""
        return f"{scheme}://{self._userinfo()}@{host}:{port}"

    def secret_data(self, *, amqp_url: str, management_url: str) -> dict[str, str]:
        """The Secret's data (plain text; the cluster backend base64-encodes it)."""
        return {USERNAME_KEY: self.username, PASSWORD_KEY: self.password,
                AMQP_URL_KEY: amqp_url, MANAGEMENT_URL_KEY: management_url}


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs (a CI log outlives the run)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


#: ``scheme://user:password@`` anywhere in a text (KEDA 2.16's rabbitmq scaler puts its whole
#: management URL, password included, into its errors: kedacore/keda#2040).
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:)[^@\s/]+@")


def scrub(value: T) -> T:
    """``value`` with every URL password in it replaced by ``***``: strings, and the strings
    inside dicts and lists (diagnostics: logs, Events, conditions). For what a run keeps."""
    if isinstance(value, str):
        return _USERINFO.sub(r"\1***@", value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [scrub(v) for v in value]  # type: ignore[return-value]
    return value


def scrub_tree(root: Path) -> int:
    """Scrub every text file under ``root`` in place (``kind export logs``); return how many
    changed. Binary files are left alone."""
    changed = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        clean = scrub(text)
        if clean != text:
            path.write_text(clean)
            changed += 1
    return changed
