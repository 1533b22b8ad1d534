"""``ClusterBackend``: what the kind and existing backends share (addons, stack, rollouts,
port-forwards, observation). Everything that touches a cluster goes through
``scalelab.backends.cluster.kube``, so the commands issued here are asserted offline."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import requests
import yaml

from scalelab import crds
from scalelab.backends.base import Backend, Endpoints, Replicas
from scalelab.backends.broker import purge_queue
from scalelab.backends.cluster import diagnostics as cluster_diagnostics
from scalelab.backends.cluster import kube, readiness, tools
from scalelab.backends.cluster import secrets as broker_secrets
from scalelab.backends.cluster.events import (
    AppliedObject,
    RolloutState,
    event_time,
    monitor_selection,
    parse_applied,
    replicas_from_deployment,
    rollout_state,
    scaling_events_from,
)
from scalelab.backends.cluster.faults import ClusterFaults
from scalelab.backends.cluster.forwards import Forward, PortForwards, parse_service
from scalelab.backends.cluster.render import (
    ChartRelease,
    check_timing,
    go_duration,
    grafana_configmaps,
    grafana_login,
    in_namespace,
    load_charts,
    render_overlay,
    render_values,
    run_namespace,
    service_url,
    timing_context,
)
from scalelab.backends.cluster.settings import (
    BASE_DIR,
    BASE_NAMESPACE,
    CLUSTER_DIR,
    DASHBOARD_LABEL,
    GRAFANA_SERVICE,
    MONITORING_NAMESPACE,
    NAMESPACE_RE,
    RABBITMQ_DEPLOYMENT,
    ClusterSettings,
)
from scalelab.credentials import SECRET_NAME, BrokerCredentials, scrub, scrub_tree
from scalelab.decisions import ScalingEvent
from scalelab.errors import BackendError, ConfigError
from scalelab.record import new_run_id
from scalelab.scaling_manifests import load_scaling
from scalelab.settings import (
    AGENT_DEPLOYMENT,
    API_DEPLOYMENT,
    NAMESPACE,
    TASK_QUEUE,
    StackSettings,
)
from scalelab.waiting import wait_for

log = logging.getLogger(__name__)


# -- the backends ----------------------------------------------------------------------------
class ClusterBackend(Backend):
    """What kind and existing share: addons, stack, rollouts, port-forwards, observation."""

    name: ClassVar[str] = "cluster"
    #: existing: every run gets its own namespace (``scalelab-<run id suffix>``); kind: the
    #: cluster is the run's own, the stack stays in ``scalelab``.
    per_run_namespace: ClassVar[bool] = False
    #: The CRD whose presence says a Prometheus operator can take scalelab's PodMonitors.
    PODMONITOR_CRD: ClassVar[str] = "podmonitors.monitoring.coreos.com"

    def __init__(
        self, *, settings: StackSettings, cluster: ClusterSettings | None = None,
        run: kube.Runner = kube.run, spawn: kube.Spawner = kube.spawn,
        api: kube.KubeApi | None = None, which: Callable[[str], str | None] = shutil.which,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep, probe: tools.Probe = tools.probe,
        prometheus: Callable[[str], readiness.PromGet] = readiness.http_prometheus,
    ) -> None:
        super().__init__(settings=settings)
        self.cluster = ClusterSettings.from_env() if cluster is None else cluster
        #: The run this bring-up belongs to; its namespace is labelled with it.
        self.run_id = self.cluster.run_id or new_run_id(time.time())
        self.settings = dataclasses.replace(settings, namespace=self._stack_namespace(settings))
        self._run = run
        self._spawn = spawn
        self._which = which
        self._probe = probe
        #: The CLIs check_inputs found, by name (their versions checked).
        self.tool_paths: dict[str, str] = {}
        self._clock = clock
        self._sleep = sleep
        self.work_dir = self.cluster.work_dir / self.cluster.cluster_name
        self.kubectl = "kubectl"
        self.api = api if api is not None else kube.KubeApi(
            kubeconfig=self.kubeconfig or self.kubeconfig_env, context=self.cluster.context)
        self.port_forwards = PortForwards(
            kubectl_cmd=self.kubectl_cmd, spawn=spawn, log_dir=self.work_dir / "logs",
            start_timeout=self.cluster.port_forward_timeout,
            check_interval=self.cluster.forward_check_interval,
            max_restarts=self.cluster.max_forward_restarts,
            probe_timeout=self.cluster.forward_probe_timeout,
            probe_failures=self.cluster.forward_probe_failures, clock=clock, sleep=sleep)
        #: The Helm releases the addons step installed (existing: minus those the cluster
        #: already runs), and whether scalelab's PodMonitors were applied.
        self.installed_releases: list[ChartRelease] = []
        self.monitors_applied = False
        self._endpoints: Endpoints | None = None
        self._applied: list[AppliedObject] = []
        self._stack_touched = False
        #: This run's broker user and password (the credentials step; in memory only).
        self.credentials: BrokerCredentials | None = None
        #: Reads the forwarded Prometheus' HTTP API (the readiness step); tests record it.
        self._prometheus = prometheus
        #: What the readiness step waited for, once it has (``details()``).
        self.readiness: readiness.ReadinessResult | None = None

    # -- things subclasses decide ----------------------------------------------------------
    def _stack_namespace(self, settings: StackSettings) -> str:
        """SCALELAB_NAMESPACE, else a namespace the caller chose, else kind ``scalelab`` /
        existing ``scalelab-<run id suffix>``."""
        if self.cluster.namespace:
            return self.cluster.namespace
        if settings.namespace != NAMESPACE:
            return settings.namespace
        return run_namespace(self.run_id) if self.per_run_namespace else NAMESPACE

    @property
    def kubeconfig(self) -> Path | None:
        """One kubeconfig file passed as ``--kubeconfig`` (kind: the cluster's own). The
        existing backend passes KUBECONFIG's files through the environment instead: kubectl's
        and helm's ``--kubeconfig`` take one file only."""
        return None

    @property
    def kubeconfig_env(self) -> str | None:
        """KUBECONFIG as given (several files joined with os.pathsep), or None."""
        if self.kubeconfig is not None or not self.cluster.kubeconfig:
            return None
        return os.pathsep.join(str(p) for p in self.cluster.kubeconfig)

    def kube_env(self) -> dict[str, str] | None:
        """The environment for kubectl and helm: KUBECONFIG with every file, merged by them
        as by the kubernetes client. None: inherit this process' environment."""
        joined = self.kubeconfig_env
        return None if joined is None else {**os.environ, "KUBECONFIG": joined}

    def _check_tools(self) -> tools.ToolReport:
        """The CLIs this backend runs, their versions checked (``tools``, as preflight)."""
        return tools.check_cluster_tools(
            self.name, install_addons=self.cluster.install_addons,
            node_image=self.cluster.node_image, which=self._which, probe=self._probe)

    def _provision(self) -> None:
        """Make a cluster reachable (kind: create it, build and load images)."""

    def _teardown_cluster(self) -> None:
        """Remove what ``up`` created in the cluster (existing: the namespace only)."""
        self._delete_namespace()

    # -- command helpers --------------------------------------------------------------------
    def _kube_args(self) -> list[str]:
        args: list[str] = []
        if self.kubeconfig is not None:
            args += ["--kubeconfig", str(self.kubeconfig)]
        if self.cluster.context:
            args += ["--context", self.cluster.context]
        return args

    def kubectl_cmd(self, *args: str) -> list[str]:
        return [self.kubectl, *self._kube_args(), *args]

    def _kubectl(self, *args: str, input: str | None = None, timeout: float = 120.0
                 ) -> kube.Completed:
        return self._run(self.kubectl_cmd(*args), input=input, timeout=timeout,
                         env=self.kube_env())

    def helm_args(self) -> list[str]:
        """helm's flags for the cluster: one ``--kubeconfig`` file (kind) and the context;
        KUBECONFIG's several files go through ``kube_env()``."""
        args: list[str] = []
        if self.kubeconfig is not None:
            args += ["--kubeconfig", str(self.kubeconfig)]
        if self.cluster.context:
            args += ["--kube-context", self.cluster.context]
        return args

    def helm_cmd(self, release: ChartRelease, values_file: Path) -> list[str]:
        cmd = ["helm", "upgrade", "--install", release.name, release.chart,
               "--repo", release.repo, "--version", release.version,
               "--namespace", release.namespace, "--create-namespace",
               "--values", str(values_file), "--wait",
               "--timeout", go_duration(self.cluster.helm_timeout)]
        return cmd + self.helm_args()

    # -- lifecycle ---------------------------------------------------------------------------
    def check_inputs(self) -> None:
        """Bad input fails here, before anything starts."""
        if not NAMESPACE_RE.fullmatch(self.settings.namespace):
            raise ConfigError(f"{self.settings.namespace!r} is not a namespace name",
                              field="namespace",
                              fix="lower-case letters, digits and '-', at most 63")
        check_timing(self.settings.timing)
        if self.settings.agent_replicas is not None and self.settings.agent_replicas < 0:
            raise ConfigError("agent_replicas must be >= 0", field="agent_replicas",
                              fix="use 0 or more")
        # The PodMonitors the monitoring step applies, against the pinned operator's schema
        # (scalelab.crds): a typo fails here, not as an apply error minutes into bring-up.
        crds.validate_file(CLUSTER_DIR / "monitors.yaml", kinds=("PodMonitor",))
        report = self._check_tools()
        for warning in report.warnings:
            log.warning("%s backend: %s", self.name, warning)
        tools.raise_for(report.findings, backend=self.name)
        self.tool_paths = report.paths

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        """``up()`` in order; named so timings and failures say which step."""
        steps: list[tuple[str, Callable[[], None]]] = [
            ("render", self._render), ("provision", self._provision)]
        if self.cluster.install_addons:
            steps.append(("addons", self._install_addons))
        steps += [("credentials", self._apply_credentials), ("stack", self._apply_stack),
                  ("monitoring", self._apply_monitoring)]
        steps += [("rollout", self._wait_rollouts), ("port-forward", self._port_forward),
                  ("readiness", self._wait_ready)]
        return steps

    def up(self) -> Endpoints:
        self.check_inputs()
        try:
            for step_name, step in self.steps():
                t0 = self._clock()
                self.current_step = step_name
                log.info("%s backend: %s", self.name, step_name)
                step()
                self.timings[step_name] = self._clock() - t0
        except Exception as err:
            self._save_failure_diagnostics(err)
            self.down()
            raise
        except BaseException:
            self.down()
            raise
        return self.endpoints

    def _save_failure_diagnostics(self, err: Exception) -> Path | None:
        """What the cluster looked like when bring-up failed (pods, events, KEDA and
        metrics-server logs, ``kind export logs``), written before ``down()`` removes it:
        a failed bring-up has no scenario record to carry it. Never raises."""
        if self.current_step in (None, "render"):
            return None   # nothing was created yet
        path = self.work_dir / "diagnostics" / "bring-up-failure.json"
        try:
            doc = scrub({"step": self.current_step, "error": str(err), **self.diagnostics()})
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc, indent=2, default=str))
        except Exception as failed:  # noqa: BLE001 - the original error is what matters
            log.warning("could not save the bring-up diagnostics: %s", failed)
            return None
        log.warning("%s backend: step %s failed; diagnostics in %s", self.name,
                    self.current_step, path)
        return path

    def down(self) -> None:
        """Stop port-forwards, then remove what was created; idempotent, never raises."""
        self._endpoints = None
        self.port_forwards.stop()
        try:
            self._teardown_cluster()
        except Exception as err:  # noqa: BLE001
            log.warning("%s backend teardown: %s", self.name, err)
        self._applied = []

    def _delete_namespace(self) -> None:
        if not self._stack_touched:
            return
        self._stack_touched = False
        for args in (
            ("delete", "namespace", self.settings.namespace, "--ignore-not-found",
             "--wait=true", f"--timeout={go_duration(self.cluster.rollout_timeout)}"),
            ("delete", "configmap", "--namespace", MONITORING_NAMESPACE, "--selector",
             f"{DASHBOARD_LABEL}=1,app.kubernetes.io/part-of=scalelab", "--ignore-not-found"),
        ):
            try:
                self._kubectl(*args, timeout=self.cluster.rollout_timeout + 30)
            except Exception as err:  # noqa: BLE001
                log.warning("teardown `kubectl %s`: %s", " ".join(args), err)

    # -- steps -------------------------------------------------------------------------------
    def _render(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        timing = self.settings.timing
        (self.work_dir / "values").mkdir(exist_ok=True)
        for release in load_charts():
            (self.work_dir / "values" / f"{release.name}.yaml").write_text(
                render_values(release, timing=timing))
        overlay = self.work_dir / "stack"
        overlay.mkdir(exist_ok=True)
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump(render_overlay(
            overlay_dir=overlay, image_prefix=self.cluster.image_prefix,
            image_tag=self.cluster.image_tag, agent_replicas=self.settings.agent_replicas,
            namespace=self.settings.namespace, run_id=self.run_id,
            api_node_port=self.api_node_port,
            prometheus_url=service_url(self.cluster.prometheus_service)), sort_keys=False))

    @property
    def api_node_port(self) -> int | None:
        """kind: the API Service's NodePort (mapped to the host); None: a ClusterIP."""
        return None

    def addon_releases(self) -> list[ChartRelease]:
        """The pinned releases to install (existing: those the cluster does not run yet)."""
        return load_charts()

    def _install_addons(self) -> None:
        self.installed_releases = []
        for release in self.addon_releases():
            self._run(self.helm_cmd(release, self.work_dir / "values" / f"{release.name}.yaml"),
                      timeout=self.cluster.helm_timeout + 60, env=self.kube_env())
            self.installed_releases.append(release)

    @property
    def grafana_installed(self) -> bool:
        """kube-prometheus-stack (its Grafana, the dashboards' sidecar) installed by us."""
        return any(r.chart == "kube-prometheus-stack" for r in self.installed_releases)

    def _apply_credentials(self) -> None:
        """The per-run broker Secret the stack reads (``secrets``): the namespace's own if
        it has one (a kept stack's broker knows only that password), else a new random
        one; applied from stdin, so no password is on a command line."""
        ns = self.settings.namespace
        found = self._kubectl("get", "secret", SECRET_NAME, "--namespace", ns,
                              "--ignore-not-found", "--output", "json", timeout=60)
        self.credentials = (broker_secrets.read_credentials(found.stdout, namespace=ns)
                            or BrokerCredentials.generate())
        self._stack_touched = True   # the namespace exists from here on: down() removes it
        self._kubectl("apply", "--server-side", "--field-manager=scalelab", "-f", "-",
                      input=yaml.safe_dump_all(broker_secrets.credentials_objects(
                          self.credentials, namespace=ns, run_id=self.run_id),
                          sort_keys=False))

    def _apply_stack(self) -> None:
        self._stack_touched = True
        self._kubectl("apply", "-k", str(self.work_dir / "stack"))

    def _apply_monitoring(self) -> None:
        """scalelab's PodMonitors (into the stack's namespace) and Grafana's dashboards.

        Without a Prometheus operator (no PodMonitor CRD: addons not installed and none in
        the cluster) the monitors are skipped with a warning; the pods still carry
        ``prometheus.io/*`` annotations, which an annotation-based scrape job follows.
        """
        self.monitors_applied = False
        operator = any(r.chart == "kube-prometheus-stack" for r in self.installed_releases) \
            or bool(self._kubectl("get", "crd", self.PODMONITOR_CRD, "--ignore-not-found",
                                  "--output", "name", timeout=60).stdout.strip())
        if operator:
            monitors = in_namespace(
                list(yaml.safe_load_all((CLUSTER_DIR / "monitors.yaml").read_text())),
                self.settings.namespace)
            if not any(r.chart == "kube-prometheus-stack" for r in self.installed_releases):
                self._select_for_clusters_prometheus(monitors)
            self._kubectl("apply", "-f", "-", input=yaml.safe_dump_all(monitors,
                                                                         sort_keys=False))
            self.monitors_applied = True
        else:
            log.warning("no Prometheus operator in the cluster (CRD %s missing): scalelab's "
                        "PodMonitors are not applied. The pods carry prometheus.io/scrape "
                        "annotations; point SCALELAB_PROMETHEUS_SERVICE at a Prometheus "
                        "that scrapes annotated pods, or install the addons",
                        self.PODMONITOR_CRD)
        if self.grafana_installed:
            self._kubectl("apply", "--server-side", "--field-manager=scalelab", "-f", "-",
                          input=yaml.safe_dump_all(grafana_configmaps(), sort_keys=False))

    def _select_for_clusters_prometheus(self, monitors: list[dict[str, Any]]) -> None:
        """A cluster's own Prometheus (not scalelab's kube-prometheus-stack) reads only the
        PodMonitors its ``podMonitorSelector`` matches (a stock kube-prometheus-stack:
        ``release: <its release>``) in the namespaces its ``podMonitorNamespaceSelector``
        matches: give ours those labels, and the run's namespace its labels, so readiness
        does not wait 300 s on "no targets"."""
        prom_ns = self.cluster.prometheus_service.split("/", 1)[0]
        found = self.api.list_custom_objects(group="monitoring.coreos.com", version="v1",
                                             namespace=prom_ns, plural="prometheuses")
        if not found:
            log.warning("no Prometheus resource in namespace %s: scalelab's PodMonitors "
                        "get no selector labels", prom_ns)
            return
        selection = monitor_selection(found[0])
        for problem in selection.problems:
            log.warning("%s", problem)
        for monitor in monitors:
            monitor.setdefault("metadata", {}).setdefault("labels", {}).update(
                selection.pod_monitor_labels)
        if selection.namespace_labels:
            self._kubectl("label", "namespace", self.settings.namespace, "--overwrite",
                          *(f"{k}={v}" for k, v in selection.namespace_labels.items()))

    def _wait_rollouts(self) -> None:
        ns = self.settings.namespace
        for name in (RABBITMQ_DEPLOYMENT, API_DEPLOYMENT, AGENT_DEPLOYMENT):
            def probe(n: str = name) -> RolloutState:
                return rollout_state(self.api.get_deployment(namespace=ns, name=n))

            wait_for(probe, lambda s: s.complete, what=f"Deployment {ns}/{name} to roll out",
                     expected="all replicas updated and available",
                     timeout=self.cluster.rollout_timeout, interval=2.0,
                     clock=self._clock, sleep=self._sleep,
                     fix=f"kubectl -n {ns} describe deployment {name}; "
                         f"kubectl -n {ns} get events --sort-by=.lastTimestamp")

    @property
    def direct_api_url(self) -> str | None:
        """The API's URL without a port-forward (kind: the NodePort's host mapping;
        existing: SCALELAB_API_URL), or None: the API is port-forwarded too."""
        return None

    def forwards(self) -> list[Forward]:
        """The port-forwards, each with the probe the watchdog uses to find it stalled."""
        ns = self.settings.namespace
        out: list[Forward] = []
        if self.direct_api_url is None:
            out.append(Forward(key="api", namespace=ns, service="api", port=8080,
                               probe="http", path="/healthz"))
        out += [parse_service(self.cluster.prometheus_service, "prometheus", probe="http",
                              path="/-/healthy"),
                Forward(key="rabbitmq_management", namespace=ns, service="rabbitmq",
                        port=15672, probe="http", path="/"),
                Forward(key="amqp", namespace=ns, service="rabbitmq", port=5672, probe="amqp")]
        if self.grafana_installed:
            out.append(parse_service(GRAFANA_SERVICE, "grafana", probe="http",
                                     path="/api/health"))
        return out

    def _port_forward(self) -> None:
        p = self.port_forwards.start(self.forwards())
        api = self.direct_api_url or f"http://127.0.0.1:{p['api']}"
        if self.direct_api_url is not None:
            self._wait_api(api)
        assert self.credentials is not None, "the credentials step runs before"
        amqp, management = broker_secrets.local_urls(
            self.credentials, amqp_port=p["amqp"], management_port=p["rabbitmq_management"])
        self._endpoints = Endpoints(
            api=api, prometheus=f"http://127.0.0.1:{p['prometheus']}",
            rabbitmq_management=management, amqp=amqp)

    def _wait_api(self, url: str) -> None:
        """The API answers ``/healthz`` at its direct URL (kube-proxy has programmed the
        NodePort; the user's URL reaches it)."""
        ns = self.settings.namespace

        def probe() -> str:
            try:
                return f"HTTP {requests.get(f'{url}/healthz', timeout=2.0).status_code}"
            except requests.RequestException as err:
                return type(err).__name__

        wait_for(probe, lambda state: state == "HTTP 200", what=f"the API at {url}/healthz",
                 expected="HTTP 200", timeout=self.cluster.port_forward_timeout, interval=0.5,
                 clock=self._clock, sleep=self._sleep,
                 fix=f"kubectl -n {ns} get svc api -o wide; kubectl -n {ns} get endpoints api")

    def readiness_plan(self) -> readiness.ReadinessPlan:
        """What the readiness step expects, from what the earlier steps applied: the
        PodMonitors' pools (when applied), the pools and APIServices of the charts scalelab
        installed (from their rendered values), detection for what the cluster brought."""
        monitors = list(yaml.safe_load_all((CLUSTER_DIR / "monitors.yaml").read_text())) \
            if self.monitors_applied else []
        workloads = [doc for path in sorted(BASE_DIR.glob("*.yaml"))
                     for doc in yaml.safe_load_all(path.read_text()) if doc]
        for doc in workloads:   # the overlay's replica count (0: no agent to scrape yet)
            if doc.get("kind") == "Deployment" and self.settings.agent_replicas is not None \
                    and (doc.get("metadata") or {}).get("name") == AGENT_DEPLOYMENT:
                doc["spec"]["replicas"] = self.settings.agent_replicas
        installed = [readiness.InstalledChart(
            chart=r.chart, release=r.name, namespace=r.namespace,
            values=yaml.safe_load((self.work_dir / "values" / f"{r.name}.yaml").read_text())
            or {}) for r in self.installed_releases]
        return readiness.build_plan(monitors=monitors, workloads=workloads,
                                    namespace=self.settings.namespace, installed=installed)

    def _wait_ready(self) -> None:
        """Rolled out is not measurable yet: wait for the metrics APIServices and for
        Prometheus to scrape every expected target (``readiness``)."""
        c = self.cluster
        self.readiness = readiness.wait_ready(
            plan=self.readiness_plan(),
            get_apiservice=lambda name: self.api.get_apiservice(name=name),
            prometheus=self._prometheus(self.endpoints.prometheus),
            apiservice_timeout=c.apiservice_timeout, scrape_timeout=c.scrape_ready_timeout,
            interval=c.readiness_interval, clock=self._clock, sleep=self._sleep)

    def heal_forwards(self) -> list[str]:
        """Restart every port-forward that exited (``PortForwards.heal``)."""
        return self.port_forwards.heal()

    @property
    def forward_restarts(self) -> dict[str, int]:
        return self.port_forwards.restarts

    # -- observation -------------------------------------------------------------------------
    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise BackendError(f"the {self.name} backend is not up", fix="call up() first")
        return self._endpoints

    @property
    def grafana_url(self) -> str | None:
        """Grafana's forwarded URL when the backend installed kube-prometheus-stack."""
        port = self.port_forwards.ports.get("grafana")
        return None if port is None or self._endpoints is None else f"http://127.0.0.1:{port}"

    @property
    def grafana_login(self) -> tuple[str, str] | None:
        """Grafana's user and password (the kps values template), with ``grafana_url``."""
        return None if self.grafana_url is None else grafana_login()

    def urls(self) -> dict[str, str]:
        """What a user opens: the endpoints, and Grafana with its login when installed."""
        out = self.endpoints.as_dict()
        if self.grafana_url is not None and self.grafana_login is not None:
            user, password = self.grafana_login
            out["grafana"] = self.grafana_url
            out["grafana_login"] = f"{user} / {password}"
        return out

    def replicas(self, deployment: str) -> Replicas:
        doc = self.api.get_deployment(namespace=self.settings.namespace, name=deployment)
        if doc is None:
            raise BackendError(f"Deployment {self.settings.namespace}/{deployment} not found",
                               fix="bring the stack up first (`scalelab up`)")
        return replicas_from_deployment(doc)

    def scaling_events(self, since: float = 0.0) -> list[ScalingEvent]:
        ns = self.settings.namespace
        return scaling_events_from(events=self.api.list_events(namespace=ns),
                                   hpas=self.api.list_hpas(namespace=ns), since=since)

    def diagnostics(self) -> dict[str, Any]:
        ns = self.settings.namespace
        out: dict[str, Any] = {"backend": self.name, "errors": [],
                               "port_forward_restarts": dict(self.forward_restarts)}
        try:
            pods = self.api.list_pods(namespace=ns)
            out["pods"] = [{
                "name": p["metadata"]["name"],
                "phase": (p.get("status") or {}).get("phase"),
                "ready": all(c.get("ready") for c in
                             (p.get("status") or {}).get("containerStatuses") or []),
                "restarts": sum(int(c.get("restartCount", 0)) for c in
                                (p.get("status") or {}).get("containerStatuses") or []),
            } for p in pods]
            out["logs"] = {p["metadata"]["name"]: self.api.pod_log(
                namespace=ns, name=p["metadata"]["name"], tail_lines=50) for p in pods}
        except Exception as err:  # noqa: BLE001 - diagnostics must not fail the report
            out["errors"].append(f"pods: {err}")
        try:
            events = sorted(self.api.list_events(namespace=ns), key=lambda e: event_time(e) or 0)
            out["events"] = [{
                "t": event_time(e), "type": e.get("type"), "reason": e.get("reason"),
                "object": f"{(e.get('involvedObject') or {}).get('kind')}/"
                          f"{(e.get('involvedObject') or {}).get('name')}",
                "message": e.get("message"), "count": e.get("count")} for e in events[-100:]]
        except Exception as err:  # noqa: BLE001
            out["errors"].append(f"events: {err}")
        # Beyond the namespace: node logs (kind), KEDA and metrics-server logs, the HPA flags
        # in force, HPA and ScaledObject conditions; each section fails on its own.
        more = cluster_diagnostics.collect(
            api=self.api, namespace=ns, out_dir=self.work_dir / "diagnostics", run=self._run,
            kind_export=self._kind_logs_command, profile=timing_context(self.settings.timing))
        out["errors"] += more.pop("errors")
        out.update(more)
        logs_dir = (out.get("kind_logs") or {}).get("dir")
        if logs_dir:
            scrub_tree(Path(logs_dir))
        # KEDA's rabbitmq scaler errors carry the management URL with the run's password
        # (kedacore/keda#2040): nothing kept by the run may hold it.
        return scrub(out)

    def _kind_logs_command(self, dest: Path) -> list[str] | None:
        """``kind export logs`` into ``dest`` (kind backend); None: no node logs to export."""
        return None

    def details(self) -> dict[str, Any]:
        c = self.cluster
        return {"cluster": c.cluster_name if self.name == "kind" else None,
                "context": c.context,
                "kubeconfig": str(self.kubeconfig or self.kubeconfig_env or "~/.kube/config"),
                "namespace": self.settings.namespace, "run_id": self.run_id,
                "api": "NodePort" if self.api_node_port is not None
                else "direct URL" if self.direct_api_url else "port-forward",
                "addons_installed_by_scalelab": c.install_addons,
                "images": f"{c.image_prefix + '/' if c.image_prefix else ''}scalelab/*:"
                          f"{c.image_tag}",
                "prometheus_service": c.prometheus_service}

    def versions(self) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            out["kubernetes"] = str(self.api.server_version().get("gitVersion", "unknown"))
        except Exception as err:  # noqa: BLE001
            out["kubernetes"] = f"unknown ({err})"
        for release in load_charts():
            out[f"chart/{release.chart}"] = release.version
        if self.cluster.install_addons or self._which("helm"):
            try:
                for rel in self.helm_releases():
                    chart = str(rel.get("chart", ""))
                    name, _, version = chart.rpartition("-")
                    if name:
                        out[f"chart/{name}"] = version
                        out[name] = str(rel.get("app_version", ""))
            except Exception as err:  # noqa: BLE001
                log.warning("helm list: %s", err)
        return out

    def helm_releases(self) -> list[dict[str, Any]]:
        """``helm list --all-namespaces`` as JSON (name, namespace, chart, app_version...)."""
        cmd = ["helm", "list", "--all-namespaces", "--output", "json", *self.helm_args()]
        return list(yaml.safe_load(self._run(cmd, timeout=60, env=self.kube_env()).stdout)
                    or [])

    # -- control -----------------------------------------------------------------------------
    def apply_scaling(self, manifest: Path) -> list[str]:
        """Apply a scaling manifest (written for namespace ``scalelab``) into the stack's
        namespace: ``metadata.namespace`` is rewritten, then ``kubectl apply -f -``."""
        # Parse and check names/namespace first; the API server and KEDA's webhook do the rest.
        load_scaling(Path(manifest), namespace=BASE_NAMESPACE)
        docs = in_namespace(list(yaml.safe_load_all(Path(manifest).read_text())),
                            self.settings.namespace)
        done = self._kubectl("apply", "--namespace", self.settings.namespace,
                             "-f", "-", "-o", "json",
                             input=yaml.safe_dump_all(docs, sort_keys=False))
        applied = parse_applied(done.stdout)
        self._applied.extend(applied)
        return [a.ref for a in applied]

    def remove_scaling(self) -> None:
        """Delete the applied objects and wait until no HPA is left (KEDA's is GC'd)."""
        applied, self._applied = self._applied, []
        if not applied:
            return
        ns = self.settings.namespace
        resources = list(dict.fromkeys(a.resource for a in applied))
        self._kubectl("delete", "--namespace", ns, *resources, "--ignore-not-found",
                      "--wait=true", "--timeout=120s", timeout=150)
        wait_for(lambda: [h["metadata"]["name"] for h in self.api.list_hpas(namespace=ns)],
                 lambda names: not names, what=f"HorizontalPodAutoscalers in {ns} to be gone",
                 expected="none", timeout=120.0, interval=1.0, clock=self._clock,
                 sleep=self._sleep)

    def scale(self, deployment: str, replicas: int) -> None:
        self.api.scale_deployment(namespace=self.settings.namespace, name=deployment,
                                  replicas=replicas)

    def baseline_replicas(self, deployment: str) -> int:
        """What the overlay deploys: ``agent_replicas`` for the agent (the kustomization's
        ``replicas``), else ``spec.replicas`` of the Deployment in ``manifests/base``
        (1 when absent, as the apiserver defaults it)."""
        if deployment == AGENT_DEPLOYMENT and self.settings.agent_replicas is not None:
            return self.settings.agent_replicas
        for path in sorted(BASE_DIR.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "Deployment" \
                        and (doc.get("metadata") or {}).get("name") == deployment:
                    return int((doc.get("spec") or {}).get("replicas", 1))
        raise ConfigError(f"no Deployment {deployment!r} in {BASE_DIR}", file=str(BASE_DIR),
                          fix=f"add the {deployment} Deployment to manifests/base")

    def purge_queue(self) -> int:
        return purge_queue(self.endpoints.amqp, TASK_QUEUE)

    def fault_injector(self) -> ClusterFaults:
        """Faults through the Kubernetes API (``scalelab.backends.cluster.faults``)."""
        return ClusterFaults(api=self.api, namespace=self.settings.namespace)
