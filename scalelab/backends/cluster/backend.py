"""``ClusterBackend``: what the kind and existing backends share (addons, stack, rollouts,
port-forwards, observation). Everything that touches a cluster goes through
``scalelab.backends.cluster.kube``, so the commands issued here are asserted offline."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import yaml

from scalelab.backends.base import Backend, Endpoints, Replicas, ScalingEvent
from scalelab.backends.broker import purge_queue
from scalelab.backends.cluster import kube, tools
from scalelab.backends.cluster.events import (
    AppliedObject,
    RolloutState,
    event_time,
    hpa_conditions,
    parse_applied,
    replicas_from_deployment,
    rollout_state,
    scaling_events_from,
)
from scalelab.backends.cluster.forwards import Forward, PortForwards, parse_service
from scalelab.backends.cluster.render import (
    ChartRelease,
    check_timing,
    go_duration,
    grafana_configmaps,
    load_charts,
    render_overlay,
    render_values,
)
from scalelab.backends.cluster.settings import (
    BASE_NAMESPACE,
    CLUSTER_DIR,
    DASHBOARD_LABEL,
    GRAFANA_SERVICE,
    MONITORING_NAMESPACE,
    RABBITMQ_DEPLOYMENT,
    ClusterSettings,
)
from scalelab.errors import BackendError, ConfigError
from scalelab.manifests import load_scaling
from scalelab.settings import (
    AGENT_DEPLOYMENT,
    API_DEPLOYMENT,
    TASK_QUEUE,
    StackSettings,
)
from scalelab.waiting import wait_for

log = logging.getLogger(__name__)


# -- the backends ----------------------------------------------------------------------------
class ClusterBackend(Backend):
    """What kind and existing share: addons, stack, rollouts, port-forwards, observation."""

    name: ClassVar[str] = "cluster"

    def __init__(
        self, *, settings: StackSettings, cluster: ClusterSettings | None = None,
        run: kube.Runner = kube.run, spawn: kube.Spawner = kube.spawn,
        api: kube.KubeApi | None = None, which: Callable[[str], str | None] = shutil.which,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep, probe: tools.Probe = tools.probe,
    ) -> None:
        super().__init__(settings=settings)
        self.cluster = ClusterSettings.from_env() if cluster is None else cluster
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
            kubeconfig=self.kubeconfig, context=self.cluster.context)
        self.port_forwards = PortForwards(
            kubectl_cmd=self.kubectl_cmd, spawn=spawn, log_dir=self.work_dir / "logs",
            start_timeout=self.cluster.port_forward_timeout,
            check_interval=self.cluster.forward_check_interval,
            max_restarts=self.cluster.max_forward_restarts, clock=clock, sleep=sleep)
        self._endpoints: Endpoints | None = None
        self._applied: list[AppliedObject] = []
        self._stack_touched = False
        self.timings: dict[str, float] = {}

    # -- things subclasses decide ----------------------------------------------------------
    @property
    def kubeconfig(self) -> Path | None:
        return self.cluster.kubeconfig

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
        return self._run(self.kubectl_cmd(*args), input=input, timeout=timeout)

    def helm_cmd(self, release: ChartRelease, values_file: Path) -> list[str]:
        cmd = ["helm", "upgrade", "--install", release.name, release.chart,
               "--repo", release.repo, "--version", release.version,
               "--namespace", release.namespace, "--create-namespace",
               "--values", str(values_file), "--wait",
               "--timeout", go_duration(self.cluster.helm_timeout)]
        if self.kubeconfig is not None:
            cmd += ["--kubeconfig", str(self.kubeconfig)]
        if self.cluster.context:
            cmd += ["--kube-context", self.cluster.context]
        return cmd

    # -- lifecycle ---------------------------------------------------------------------------
    def check_inputs(self) -> None:
        """Bad input fails here, before anything starts."""
        if self.settings.namespace != BASE_NAMESPACE:
            raise ConfigError(
                f"namespace {self.settings.namespace!r} differs from manifests/base "
                f"({BASE_NAMESPACE!r})", field="namespace",
                fix=f"use the namespace {BASE_NAMESPACE!r} on the {self.name} backend "
                    "(the services' URLs in manifests/base name it)")
        check_timing(self.settings.timing)
        if self.settings.agent_replicas is not None and self.settings.agent_replicas < 0:
            raise ConfigError("agent_replicas must be >= 0", field="agent_replicas",
                              fix="use 0 or more")
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
        steps.append(("stack", self._apply_stack))
        if self.cluster.install_addons:
            steps.append(("monitoring", self._apply_monitoring))
        steps += [("rollout", self._wait_rollouts), ("port-forward", self._port_forward)]
        return steps

    def up(self) -> Endpoints:
        self.check_inputs()
        try:
            for step_name, step in self.steps():
                t0 = self._clock()
                log.info("%s backend: %s", self.name, step_name)
                step()
                self.timings[step_name] = self._clock() - t0
        except BaseException:
            self.down()
            raise
        return self.endpoints

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
            image_tag=self.cluster.image_tag, agent_replicas=self.settings.agent_replicas),
            sort_keys=False))

    def _install_addons(self) -> None:
        for release in load_charts():
            self._run(self.helm_cmd(release, self.work_dir / "values" / f"{release.name}.yaml"),
                      timeout=self.cluster.helm_timeout + 60)

    def _apply_stack(self) -> None:
        self._stack_touched = True
        self._kubectl("apply", "-k", str(self.work_dir / "stack"))

    def _apply_monitoring(self) -> None:
        self._kubectl("apply", "-f", str(CLUSTER_DIR / "monitors.yaml"))
        self._kubectl("apply", "--server-side", "--field-manager=scalelab", "-f", "-",
                      input=yaml.safe_dump_all(grafana_configmaps(), sort_keys=False))

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

    def forwards(self) -> list[Forward]:
        ns = self.settings.namespace
        out = [Forward(key="api", namespace=ns, service="api", port=8080),
               parse_service(self.cluster.prometheus_service, "prometheus"),
               Forward(key="rabbitmq_management", namespace=ns, service="rabbitmq", port=15672),
               Forward(key="amqp", namespace=ns, service="rabbitmq", port=5672)]
        if self.cluster.install_addons:
            out.append(parse_service(GRAFANA_SERVICE, "grafana"))
        return out

    def _port_forward(self) -> None:
        p = self.port_forwards.start(self.forwards())
        self._endpoints = Endpoints(
            api=f"http://127.0.0.1:{p['api']}",
            prometheus=f"http://127.0.0.1:{p['prometheus']}",
            rabbitmq_management=f"http://127.0.0.1:{p['rabbitmq_management']}",
            amqp=f"amqp://guest:guest@127.0.0.1:{p['amqp']}/%2F")

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
        """Grafana (admin / scalelab) when the backend installed kube-prometheus-stack."""
        port = self.port_forwards.ports.get("grafana")
        return None if port is None or self._endpoints is None else f"http://127.0.0.1:{port}"

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
            out["hpas"] = {h["metadata"]["name"]: {
                "current": (h.get("status") or {}).get("currentReplicas"),
                "desired": (h.get("status") or {}).get("desiredReplicas"),
                "conditions": hpa_conditions(h)} for h in self.api.list_hpas(namespace=ns)}
        except Exception as err:  # noqa: BLE001
            out["errors"].append(f"events: {err}")
        return out

    def details(self) -> dict[str, Any]:
        c = self.cluster
        return {"cluster": c.cluster_name if self.name == "kind" else None,
                "context": c.context, "kubeconfig": str(self.kubeconfig or "~/.kube/config"),
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
                cmd = ["helm", "list", "--all-namespaces", "--output", "json"]
                if self.kubeconfig is not None:
                    cmd += ["--kubeconfig", str(self.kubeconfig)]
                if self.cluster.context:
                    cmd += ["--kube-context", self.cluster.context]
                for rel in yaml.safe_load(self._run(cmd, timeout=60).stdout) or []:
                    chart = str(rel.get("chart", ""))
                    name, _, version = chart.rpartition("-")
                    if name:
                        out[f"chart/{name}"] = version
                        out[name] = str(rel.get("app_version", ""))
            except Exception as err:  # noqa: BLE001
                log.warning("helm list: %s", err)
        return out

    # -- control -----------------------------------------------------------------------------
    def apply_scaling(self, manifest: Path) -> list[str]:
        # Parse and check names/namespace first; the API server and KEDA's webhook do the rest.
        load_scaling(Path(manifest), namespace=self.settings.namespace)
        done = self._kubectl("apply", "--namespace", self.settings.namespace,
                             "-f", str(manifest), "-o", "json")
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

    def purge_queue(self) -> int:
        return purge_queue(self.endpoints.amqp, TASK_QUEUE)
