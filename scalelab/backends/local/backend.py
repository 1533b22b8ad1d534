"""``LocalBackend``: the whole stack as private processes on 127.0.0.1.

Bring-up order: check binaries and read manifests (fail before anything starts) ->
temp dir -> RabbitMQ and Prometheus (concurrently: the broker's Erlang boot dominates)
-> exporter -> the ``api`` and ``agent`` Deployments' pods -> wait until ready -> wait
until Prometheus has scraped every job once (ready to measure). Any
failure or interrupt on the way tears down what was started (``down()`` is idempotent
and safe after a partial ``up()``), so no process, port or temp dir is left.

The backend is also the emulated controllers' ``ClusterView`` (pods, metrics-server
metrics, the scale subresource, the target's env).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import port_for
from prometheus_client import CollectorRegistry

from scalelab import paths
from scalelab.backends.base import Backend, Endpoints, Replicas
from scalelab.backends.broker import purge_queue
from scalelab.backends.cluster import readiness  # its scrape wait: no cluster API in it
from scalelab.backends.local import scrape
from scalelab.backends.local.deployments import (
    BASE,
    DeploymentSpec,
    check_broker_env,
    load_deployment,
    load_documents,
    local_secret_data,
)
from scalelab.backends.local.faults import LocalFaults
from scalelab.backends.local.kube_metrics import Exporter, KubeStateCollector
from scalelab.backends.local.pods import Launch, Supervisor
from scalelab.backends.local.resources import ResourceAccounting
from scalelab.control.view import PodFacts, PodMetric
from scalelab.credentials import SECRET_NAME
from scalelab.decisions import ScalingEvent
from scalelab.errors import BackendError, ConfigError
from scalelab.faults import FaultInjector
from scalelab.procs import prometheus as prom
from scalelab.procs.tcp_proxy import TcpProxy
from scalelab.settings import AGENT_DEPLOYMENT, API_DEPLOYMENT, TASK_QUEUE, StackSettings

LOG = logging.getLogger(__name__)

#: Which env var of each Deployment carries its listening port (the manifest's value is
#: the containerPort; locally every pod gets its own free port instead).
PORT_ENV = {API_DEPLOYMENT: "PORT", AGENT_DEPLOYMENT: "METRICS_PORT"}
BIND_ENV = {API_DEPLOYMENT: "BIND", AGENT_DEPLOYMENT: "METRICS_BIND"}


class LocalBackend(Backend):
    """Real broker and Prometheus, services as supervised processes, emulated controllers."""

    name = "local"

    def __init__(
        self,
        *,
        settings: StackSettings,
        manifests: Path = BASE,
        startup_timeout: float = 60.0,
        sample_interval: float = 1.0,
        service_commands: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(settings=settings)
        self.manifests = Path(manifests)
        self.startup_timeout = startup_timeout
        self.sample_interval = sample_interval
        self.service_commands = service_commands or {
            API_DEPLOYMENT: [sys.executable, "-m", "services.api"],
            AGENT_DEPLOYMENT: [sys.executable, "-m", "services.agent"],
        }
        self.workdir: Path | None = None
        self.rabbitmq: Any = None
        self.prometheus: prom.PrometheusServer | None = None
        self.exporter: Exporter | None = None
        self.registry = CollectorRegistry()
        self.accounting = ResourceAccounting(window=settings.timing.metrics_window)
        self.supervisors: dict[str, Supervisor] = {}
        self.specs: dict[str, DeploymentSpec] = {}
        self._collector: KubeStateCollector | None = None
        self._loops: list[Any] = []
        self._applied: list[str] = []
        self._sampler: threading.Thread | None = None
        self._stop_sampler = threading.Event()
        self._sd_lock = threading.Lock()
        self._endpoints: Endpoints | None = None
        self._api_port: int | None = None
        self._exporter_port: int | None = None
        #: Secret name -> data: the Secrets manifests/base reads, held in memory only.
        self._secrets: dict[str, dict[str, str]] = {}
        #: The agents reach the broker through this relay, so a ``partition`` fault can cut
        #: them off (``scalelab.procs.tcp_proxy``).
        self.proxies: dict[str, TcpProxy] = {}

    # -- lifecycle -------------------------------------------------------------------
    def up(self) -> Endpoints:
        if self._endpoints is not None:
            return self._endpoints
        from scalelab.procs.rabbitmq import RabbitMQNode, find_server_script

        # everything that can be checked without starting anything, first
        find_server_script()
        prom.find_binary()
        self.specs = {name: load_deployment(name, path=self.manifests / f"{name}.yaml")
                      for name in (API_DEPLOYMENT, AGENT_DEPLOYMENT)}
        for name, var in PORT_ENV.items():
            if not any(e.get("name") == var for e in self.specs[name].env):
                raise ConfigError(f"env {var} is missing", file=str(self.specs[name].file),
                                  field="spec.template.spec.containers[0].env",
                                  fix=f"add {var} (the container's listening port)")
            check_broker_env(self.specs[name])
        started = time.monotonic()
        try:
            for step_name, step in self.steps(RabbitMQNode):
                self.current_step = step_name
                t0 = time.monotonic()
                step()
                self.timings[step_name] = time.monotonic() - t0
        except BaseException:
            self.down()
            raise
        self.timings["total"] = time.monotonic() - started
        assert self._endpoints is not None
        return self._endpoints

    def steps(self, node_class: Any) -> list[tuple[str, Callable[[], None]]]:
        """``up()`` after the checks, in order; named so timings and a bring-up timeout
        say which step (as ``ClusterBackend.steps()``)."""
        return [("prepare", functools.partial(self._prepare, node_class)),
                ("rabbitmq+prometheus", self._start_servers),
                ("exporter", self._start_exporter),
                ("pods", self._start_pods),
                ("scraping", self._wait_scraping)]

    def _prepare(self, node_class: Any) -> None:
        """Work dir, ports and the servers' configuration; nothing runs yet."""
        bind = self.settings.bind
        self.workdir = Path(tempfile.mkdtemp(prefix="scalelab-local-"))
        # traversable (not listable) by others: as root the broker drops to user rabbitmq
        self.workdir.chmod(0o711)
        # Every port is picked before any server binds one: each pick excludes the others
        taken: set[int] = set()
        self._exporter_port = port_for.select_random(exclude_ports=taken)
        taken.add(self._exporter_port)
        self._api_port = port_for.select_random(exclude_ports=taken)
        taken.add(self._api_port)
        self.rabbitmq = node_class(host=bind, workdir=self.workdir / "rabbitmq",
                                   startup_timeout=self.startup_timeout, exclude_ports=taken)
        rabbit = self.rabbitmq
        taken |= {rabbit.amqp_port, rabbit.management_port, rabbit.prometheus_port,
                  rabbit.dist_port, rabbit.epmd_port}
        self._secrets = {SECRET_NAME: local_secret_data(rabbit)}
        self.proxies = {AGENT_DEPLOYMENT: TcpProxy(upstream=(bind, rabbit.amqp_port),
                                                   listen_host=bind, name="agent-broker").start()}
        config = scrape.scrape_config(
            scrape_interval=self.settings.timing.scrape_interval,
            namespace=self.settings.namespace, bind=bind,
            rabbitmq_prometheus_port=rabbit.prometheus_port, exporter_port=self._exporter_port,
            sd_paths={name: self._sd_path(name) for name in (API_DEPLOYMENT, AGENT_DEPLOYMENT)},
        )
        for name in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            prom.write_file_sd(self._sd_path(name), [])
        self.prometheus = prom.PrometheusServer(
            config=config, workdir=self.workdir / "prometheus", host=bind,
            port=port_for.select_random(exclude_ports=taken),
            startup_timeout=self.startup_timeout)

    def _start_servers(self) -> None:
        """The broker's Erlang boot takes seconds: Prometheus starts meanwhile."""
        assert self.prometheus is not None and self.rabbitmq is not None
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(self.prometheus.start)
            try:
                self.rabbitmq.start()
                self.timings["rabbitmq"] = time.monotonic() - t0
            finally:
                with contextlib.suppress(Exception):
                    future.result()  # wait, so a failed broker never leaves it starting
            future.result()           # re-raise Prometheus' own error, if any

    def _start_exporter(self) -> None:
        """The kube-state-metrics / cAdvisor series of the emulated cluster."""
        assert self._exporter_port is not None, "the prepare step picks it"
        self._collector = KubeStateCollector(
            namespace=self.settings.namespace,
            supervisors=lambda: list(self.supervisors.values()),
            accounting=self.accounting)
        self.registry.register(self._collector)
        self.exporter = Exporter(registry=self.registry, host=self.settings.bind,
                                 port=self._exporter_port)
        self.exporter.start()

    def _start_pods(self) -> None:
        """The api and agent Deployments' pods, the resource sampler; until every pod is
        ready. Then the stack has endpoints."""
        assert self.workdir is not None and self.prometheus is not None
        bind = self.settings.bind
        for name in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            replicas = self.settings.agent_replicas if name == AGENT_DEPLOYMENT else None
            sup = Supervisor(
                spec=self.specs[name], command=self.service_commands[name],
                launch=functools.partial(self._launch, name),
                workdir=self.workdir, replicas=replicas,
                grace_period=self.specs[name].termination_grace_period
                or self.settings.timing.termination_grace_period,
                cwd=paths.ROOT, host=bind, on_change=functools.partial(self._write_sd, name))
            self.supervisors[name] = sup
            sup.start()
        self._sampler = threading.Thread(target=self._sample_loop, name="resource-sampler",
                                         daemon=True)
        self._sampler.start()
        for sup in self.supervisors.values():
            sup.wait_ready(timeout=self.startup_timeout)
        self._endpoints = Endpoints(
            api=f"http://{bind}:{self._api_port}", prometheus=self.prometheus.url,
            rabbitmq_management=self.rabbitmq.management_url, amqp=self.rabbitmq.amqp_url)

    def _wait_scraping(self) -> None:
        """Ready to measure, as a cluster's ``up()`` is (``backends/cluster/readiness.py``):
        every scrape job has a healthy target and a stored sample. Otherwise the first
        tasks can be done before Prometheus' first scrape of the agents, and ``rate()``
        never sees what a series' first sample already holds (empty latency quantiles)."""
        assert self.prometheus is not None
        jobs = [scrape.RABBITMQ_JOB, scrape.RABBITMQ_AGGREGATED_JOB, scrape.EXPORTER_JOB]
        # a Deployment started at 0 replicas has no target yet (as on a cluster)
        jobs += [name for name in (API_DEPLOYMENT, AGENT_DEPLOYMENT) if self.spec_replicas(name)]
        plan = readiness.ReadinessPlan(
            pools=tuple(readiness.ExpectedPool(name=job, pool=job) for job in jobs))
        readiness.wait_scraping(
            plan=plan, get=readiness.http_prometheus(self.prometheus.url),
            timeout=self.startup_timeout,
            interval=min(1.0, self.settings.timing.scrape_interval),
            fix=f"open {self.prometheus.url}/targets; the scrape config and file_sd files "
                f"are under {self.workdir}/prometheus; its log: {self.prometheus.log_path}")

    def down(self) -> None:
        """Stop everything started so far, in reverse order; idempotent, never raises."""
        self._endpoints = None
        steps: list[tuple[str, Any]] = [
            ("scaling", self.remove_scaling),
            ("sampler", self._stop_sampling),
        ]
        steps += [(f"deployment {name}", sup.shutdown)
                  for name, sup in reversed(list(self.supervisors.items()))]
        steps += [(f"broker relay {name}", proxy.close) for name, proxy in self.proxies.items()]
        steps += [
            ("exporter", self.exporter.stop if self.exporter else None),
            ("prometheus", self.prometheus.stop if self.prometheus else None),
            ("rabbitmq", self.rabbitmq.stop if self.rabbitmq else None),
        ]
        for what, step in steps:
            if step is None:
                continue
            try:
                step()
            except Exception:  # noqa: BLE001 - keep tearing down; the rest must stop too
                LOG.exception("teardown of %s failed", what)
        self.supervisors = {}
        if self._collector is not None:
            with contextlib.suppress(KeyError):
                self.registry.unregister(self._collector)
            self._collector = None
        self.exporter = self.prometheus = self.rabbitmq = None
        self.proxies = {}
        self._secrets = {}
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # -- pods: launch, service discovery, sampling ------------------------------------
    def _launch(self, deployment: str, pod: str) -> Launch:
        spec = self.specs[deployment]
        port_var = PORT_ENV[deployment]
        container_port = int(spec.resolve_env(pod=pod, secrets=self._secrets)[port_var])
        sup = self.supervisors.get(deployment)
        in_use: set[int] = set()
        for other in sup.pods() if sup else []:
            taken = other.port(container_port)
            if taken is not None:
                in_use.add(taken)
        if deployment == API_DEPLOYMENT and self._api_port not in in_use:
            port = self._api_port        # the Service's stable address
        else:
            port = port_for.select_random(exclude_ports=in_use)
        assert port is not None
        overrides = {port_var: str(port), BIND_ENV[deployment]: self.settings.bind}
        if deployment in self.proxies:
            overrides["AMQP_URL"] = self._via_proxy(deployment)
        if deployment == AGENT_DEPLOYMENT and self.workdir is not None:
            overrides["FAULT_FILE"] = str(self._fault_file(deployment))
        if deployment == API_DEPLOYMENT and self.prometheus is not None:
            # the live view's panels (services/api/live.py) read the private Prometheus
            overrides.update(PROMETHEUS_URL=self.prometheus.url,
                             NAMESPACE=self.settings.namespace,
                             SCRAPE_INTERVAL=str(self.settings.timing.scrape_interval))
        return Launch(env=spec.resolve_env(pod=pod, secrets=self._secrets, overrides=overrides),
                      ports={container_port: port})

    def _via_proxy(self, deployment: str) -> str:
        """The broker URL with the Deployment's relay as host and port."""
        proxy = self.proxies[deployment]
        parts = urlsplit(self.rabbitmq.amqp_url)
        netloc = f"{parts.username}:{parts.password}@{proxy.host}:{proxy.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def _fault_file(self, deployment: str) -> Path:
        """The fault file every pod of the Deployment reads (``services/agent/faults.py``)."""
        assert self.workdir is not None
        return self.workdir / "faults" / f"{deployment}.json"

    def fault_injector(self) -> FaultInjector:
        if self.rabbitmq is None or self.workdir is None:
            raise BackendError("the local stack is down", fix="bring it up first")
        return LocalFaults(supervisor=self._supervisor, broker=self.rabbitmq,
                           proxies=self.proxies,
                           fault_files={AGENT_DEPLOYMENT: self._fault_file(AGENT_DEPLOYMENT)})

    def _sd_path(self, deployment: str) -> Path:
        assert self.workdir is not None
        return self.workdir / "prometheus" / "sd" / f"{deployment}.json"

    def _write_sd(self, deployment: str) -> None:
        """Rewrite a Deployment's file_sd targets (pods that run and are not deleting)."""
        sup = self.supervisors.get(deployment)
        if sup is None or self.workdir is None:
            return
        spec = sup.spec
        # Snapshot and write under one lock: threads reporting pod changes concurrently
        # must not let an older snapshot be written last.
        with self._sd_lock:
            groups = []
            for pod in sup.pods():
                port = pod.port(spec.scrape_port)
                if pod.deleting or pod.phase != "Running" or port is None:
                    continue
                groups.append(prom.file_sd_group(
                    address=f"{self.settings.bind}:{port}", metrics_path=spec.scrape_path,
                    labels=scrape.pod_target_labels(
                        namespace=spec.namespace, pod=pod.name, deployment=deployment,
                        container=spec.container)))
            prom.write_file_sd(self._sd_path(deployment), groups)

    def _sample_loop(self) -> None:
        while not self._stop_sampler.wait(self.sample_interval):
            pids: dict[str, int] = {}
            for sup in list(self.supervisors.values()):
                pids.update(sup.pids())
            try:
                self.accounting.sample(pids)
            except Exception:  # noqa: BLE001
                LOG.exception("resource sampling failed")

    def _stop_sampling(self) -> None:
        self._stop_sampler.set()
        if self._sampler is not None:
            self._sampler.join(timeout=10)
            self._sampler = None
        self._stop_sampler = threading.Event()

    def _supervisor(self, deployment: str) -> Supervisor:
        try:
            return self.supervisors[deployment]
        except KeyError:
            raise BackendError(f"no Deployment {deployment!r} in the local stack",
                               fix=f"use one of {sorted(self.supervisors) or '(stack is down)'}"
                               ) from None

    # -- observation -----------------------------------------------------------------
    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise BackendError("the local stack is not up", fix="call up() first")
        return self._endpoints

    def replicas(self, deployment: str) -> Replicas:
        spec, current, ready = self._supervisor(deployment).counts()
        return Replicas(spec=spec, current=current, ready=ready)

    def scaling_events(self, since: float = 0.0) -> list[ScalingEvent]:
        events = [e for loop in self._loops for e in loop.events() if e.t >= since]
        return sorted(events, key=lambda e: e.t)

    def diagnostics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.name, "workdir": str(self.workdir),
                               "deployments": {}, "scaling_objects": list(self._applied)}
        for name, sup in self.supervisors.items():
            spec, current, ready = sup.counts()
            out["deployments"][name] = {
                "spec": spec, "current": current, "ready": ready,
                "restarts_total": sup.restarts_total, "deaths": sup.deaths[-10:],
                "pods": [dict(p.describe(), log_tail=p.log_tail()) for p in sup.pods()],
            }
        if self.rabbitmq is not None:
            out["rabbitmq_log_tail"] = self.rabbitmq.log_tail()
        if self.prometheus is not None:
            out["prometheus_log_tail"] = self.prometheus.log_tail()
        with contextlib.suppress(Exception):
            out["scaling_events"] = [e.as_dict() for e in self.scaling_events()][-50:]
        return out

    def details(self) -> dict[str, Any]:
        return {
            "real": ["RabbitMQ", "Prometheus", "api", "agent", "Locust"],
            "emulated": ["HPA controller", "KEDA operator", "metrics-server",
                         "kube-state-metrics / cAdvisor series"],
            "host": platform.node(), "cpus": os.cpu_count(),
        }

    def versions(self) -> dict[str, str]:
        out = {"python": platform.python_version(), "kubernetes": "none (local emulation)"}
        with contextlib.suppress(Exception):
            out["prometheus"] = prom.PrometheusServer(config={}, workdir=Path()).version()
        if self.rabbitmq is not None:
            with contextlib.suppress(Exception):
                out["rabbitmq"] = self.rabbitmq.version()
        return out

    def baseline_replicas(self, deployment: str) -> int:
        """The stack's ``agent_replicas`` for the agent, else the Deployment's manifest
        under ``self.manifests`` (the one this backend runs)."""
        if deployment == AGENT_DEPLOYMENT and self.settings.agent_replicas is not None:
            return self.settings.agent_replicas
        spec = self.specs.get(deployment) or load_deployment(
            deployment, path=self.manifests / f"{deployment}.yaml")
        return spec.replicas

    # -- ClusterView (what the emulated controllers see) ------------------------------
    def pods(self, deployment: str) -> list[PodFacts]:
        return self._supervisor(deployment).facts()

    def pod_metrics(self, deployment: str) -> dict[str, PodMetric]:
        names = [p.name for p in self._supervisor(deployment).facts()]
        return self.accounting.metrics(names)

    def spec_replicas(self, deployment: str) -> int:
        return self._supervisor(deployment).counts()[0]

    def container_env(self, deployment: str) -> dict[str, str]:
        spec = self._supervisor(deployment).spec
        return spec.resolve_env(pod=f"{deployment}-{spec.template_hash}", secrets=self._secrets)

    def secret(self, name: str) -> dict[str, str] | None:
        return self._secrets.get(name)

    # -- control ---------------------------------------------------------------------
    def scale(self, deployment: str, replicas: int) -> None:
        self._supervisor(deployment).scale(replicas)

    def apply_scaling(self, manifest: Path) -> list[str]:
        from scalelab.control.loop import ControlLoop
        from scalelab.scaling_manifests import validate_scaling

        agent_file = self.manifests / f"{AGENT_DEPLOYMENT}.yaml"
        workloads = {d["metadata"]["name"]: d for d in load_documents(agent_file)
                     if d.get("kind") == "Deployment"}
        objects = validate_scaling(Path(manifest), namespace=self.settings.namespace,
                                   workloads=workloads)
        loop = ControlLoop(objects=[o.doc for o in objects], view=self,
                           timing=self.settings.timing, registry=self.registry,
                           source=str(manifest), namespace=self.settings.namespace)
        loop.start()
        self._loops.append(loop)
        refs = [o.ref for o in objects]
        self._applied.extend(refs)
        return refs

    def remove_scaling(self) -> None:
        loops, self._loops = self._loops, []
        for loop in loops:
            loop.stop()
        self._applied = []

    def purge_queue(self) -> int:
        return purge_queue(self.endpoints.amqp, TASK_QUEUE)
