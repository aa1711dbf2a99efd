"""The deployment policies, each a function from rendered objects to the problems it finds
(an empty list: the manifests keep the rule). The tests run each on every rendering and, to
show it can fail, on a rendering broken on purpose.

Everything a rule compares against comes from the code (tests/deploy/codebase.py).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

from shared.errors import ConfigError
from shared.settings import OPS_PORTS, AutotaskSettings, env_names, load_settings
from tests.deploy import codebase
from tests.deploy.manifests import (
    ContainerEnv,
    Obj,
    container_env,
    container_port,
    containers,
    labels_of_pods,
    named,
    pod_spec,
    pods,
    ref,
    selects,
    workloads,
)
from tests.deploy.promql import PromQLError, grafana_to_promql, selectors

Rule = Callable[[list[Obj]], list[str]]

MANAGED_UNPREFIXED = {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}
NO_STORED_SECRETS = {"migrate", "topics"}
"""Commands that never open a stored secret, so need no AUTOTASK_SYNC_SECRET_KEYS."""
NEEDED_WITHOUT_DEFAULT = ("gateway_public_url",)
"""Fields whose empty default leaves the service unable to do its job, wherever a class has
them (the provisioner cannot register webhooks without the gateway's public URL)."""
TARGET_LABELS = {"namespace", "pod", "job", "instance", "service", "container", "endpoint"}
"""Labels Prometheus adds to every scraped series (ServiceMonitor targets)."""
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
ALERT_SEVERITIES = {"critical", "warning", "info"}
README = codebase.ROOT / "deploy" / "README.md"


def _managed(name: str) -> bool:
    return name.startswith("AUTOTASK_SYNC_") or name in MANAGED_UNPREFIXED


def _entry(container: Obj) -> codebase.EntryPoint:
    return codebase.entry_point(list(container.get("command", [])) + container.get("args", []))


# --- Security context, resources, /tmp


def security(objects: list[Obj]) -> list[str]:
    """Every container: non-root with a numeric user, read-only root filesystem, no privilege
    escalation, all capabilities dropped, seccomp RuntimeDefault, requests and limits, an
    emptyDir on /tmp; no host namespaces; no service account token."""
    problems = []
    accounts = {o["metadata"]["name"]: o for o in named(objects, "ServiceAccount")}
    for workload in workloads(objects):
        spec = pod_spec(workload)
        pod_sc = spec.get("securityContext", {})
        where = ref(workload)
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(flag):
                problems.append(f"{where}: {flag}")
        account = accounts.get(spec.get("serviceAccountName", "default"), {})
        if spec.get("automountServiceAccountToken", account.get("automountServiceAccountToken")):
            problems.append(f"{where}: mounts a service account token")
        if account.get("automountServiceAccountToken", True) is not False:
            problems.append(f"{where}: its ServiceAccount does not turn token automount off")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in containers(workload):
            at = f"{where} container {container['name']}"
            sc = container.get("securityContext", {})

            def effective(
                key: str, sc: dict[str, Any] = sc, pod_sc: dict[str, Any] = pod_sc
            ) -> Any:
                return sc.get(key, pod_sc.get(key))

            if effective("runAsNonRoot") is not True:
                problems.append(f"{at}: runAsNonRoot is not true")
            user = effective("runAsUser")
            if not isinstance(user, int) or isinstance(user, bool) or user <= 0:
                problems.append(f"{at}: runAsUser is not a numeric non-root uid ({user!r})")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: root filesystem is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                problems.append(f"{at}: privileged")
            capabilities = sc.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
                problems.append(f"{at}: capabilities are not all dropped")
            if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{at}: seccomp profile is not RuntimeDefault")
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(section, {}):
                        problems.append(f"{at}: no {resource} {section}")
            tmp = [m for m in container.get("volumeMounts", []) if m.get("mountPath") == "/tmp"]
            if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
                problems.append(f"{at}: no emptyDir mounted on /tmp")
            image = container.get("image", "")
            if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
                problems.append(f"{at}: image {image!r} has no tag")
            elif image.endswith(":latest"):
                problems.append(f"{at}: image {image!r} is :latest")
    return problems


def image_version(objects: list[Obj]) -> list[str]:
    """One image for every container, tagged with the project's version (pyproject.toml)."""
    version = tomllib.loads((codebase.ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {container["image"] for _, container in pods(objects)}
    problems = []
    if len(images) != 1:
        problems.append(f"containers run different images: {sorted(images)}")
    for image in images:
        tag = image.rsplit("/", 1)[-1].partition(":")[2].partition("@")[0]
        if tag != version:
            problems.append(f"image {image} is not tagged {version} (pyproject.toml)")
    return problems


# --- Entry points, probes, ports


def entry_points(objects: list[Obj]) -> list[str]:
    """Every container runs a real entry point (a service module or a CLI command whose
    arguments parse); services run as Deployments, one-shot commands as Jobs or CronJobs."""
    problems = []
    for workload, container in pods(objects):
        at = f"{ref(workload)} container {container['name']}"
        try:
            entry = _entry(container)
        except ValueError as exc:
            problems.append(f"{at}: {exc}")
            continue
        if entry.kind == "service" and workload["kind"] != "Deployment":
            problems.append(f"{at}: a long-running service in a {workload['kind']}")
        if entry.kind == "command" and workload["kind"] not in ("Job", "CronJob"):
            problems.append(f"{at}: a one-shot command in a {workload['kind']}")
    return problems


def _public_port(env: ContainerEnv, entry: codebase.EntryPoint) -> int:
    """The port of the service's own routes (the gateway's callouts)."""
    configured = env.value("AUTOTASK_SYNC_HTTP_PORT")
    if configured is not None:
        return int(configured)
    default = codebase.default_of(entry.settings, "http_port")
    assert isinstance(default, int)
    return default


def _ops_port(env: ContainerEnv, entry: codebase.EntryPoint) -> int:
    """The port of /healthz, /readyz and /metrics: AUTOTASK_SYNC_OPS_PORT, else the service's
    default (shared.settings.OPS_PORTS)."""
    configured = env.value("AUTOTASK_SYNC_OPS_PORT")
    if configured is not None:
        return int(configured)
    return OPS_PORTS[entry.name]


def probes(objects: list[Obj]) -> list[str]:
    """Services: liveness on /healthz and readiness on /readyz (startup, if any, on /healthz),
    on the ops port (AUTOTASK_SYNC_OPS_PORT or the service's default), which is a declared
    container port named ``ops``; every path one the services serve. The gateway also declares
    its public port, named ``http``, and the two differ."""
    problems = []
    served = codebase.ops_routes()
    wanted = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
    for workload, container in pods(objects):
        at = f"{ref(workload)} container {container['name']}"
        try:
            entry = _entry(container)
        except ValueError:
            continue  # entry_points reports it
        if entry.kind != "service":
            continue
        env = container_env(container, objects)
        port = _ops_port(env, entry)
        declared = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
        if declared.get("ops") != port:
            problems.append(f"{at}: serves ops on {port}, not a container port named ops")
        if entry.name == "webhook_gateway":
            public = _public_port(env, entry)
            if declared.get("http") != public:
                problems.append(f"{at}: serves callouts on {public}, not a port named http")
            if public == port:
                problems.append(f"{at}: the ops endpoints share the public port {port}")
        for probe_name, path in wanted.items():
            probe = container.get(probe_name)
            if probe is None:
                if probe_name != "startupProbe":
                    problems.append(f"{at}: no {probe_name}")
                continue
            http = probe.get("httpGet")
            if not http:
                problems.append(f"{at}: {probe_name} is not an HTTP probe")
                continue
            if http.get("path") != path or path not in served:
                problems.append(f"{at}: {probe_name} asks {http.get('path')}, not {path}")
            if container_port(container, http.get("port", "")) != port:
                problems.append(f"{at}: {probe_name} asks port {http.get('port')}, not {port}")
    return problems


# --- Settings


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ, values, clear=True):
        yield


def _placeholder(field_name: str) -> str:
    """A well-formed stand-in for a value that comes from a Secret."""
    if field_name == "database_url":
        return "postgresql://autotask_sync:placeholder@postgres.example:5432/autotask_sync"
    if field_name == "autotask_username":
        return "api-user@example.com"
    return "placeholder"


def settings(objects: list[Obj]) -> list[str]:
    """Every AUTOTASK_SYNC_* / DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS variable a container
    gets is read by the settings class of what it runs; secrets come from Secrets, never a
    ConfigMap or a literal; what has no usable default is set; and the settings load (each
    value parses) with the values the manifests give."""
    problems = []
    every_variable = codebase.all_variables()
    for workload, container in pods(objects):
        at = f"{ref(workload)} container {container['name']}"
        try:
            entry = _entry(container)
        except ValueError:
            continue
        env = container_env(container, objects)
        problems += [f"{at}: {p}" for p in env.problems]
        reads = codebase.variables(entry.settings)
        cls = entry.settings.__name__
        for name, source in env.variables.items():
            if not _managed(name):
                continue
            if name not in every_variable:
                problems.append(f"{at}: {name} is read by no settings class")
                continue
            if name not in reads:
                problems.append(f"{at}: {name} is not read by {cls} ({entry.name})")
                continue
            field = entry.settings.model_fields[reads[name]]
            if codebase.is_secret(field) and source.kind != "secret":
                problems.append(f"{at}: {name} is a secret but comes from a {source.kind}")
        needed = list(codebase.loopback_defaults(entry.settings))
        needed += [f for f in NEEDED_WITHOUT_DEFAULT if f in entry.settings.model_fields]
        if entry.kind == "service" or entry.name not in NO_STORED_SECRETS:
            needed.append("secret_keys")
        for field_name in needed:
            names = env_names(field_name)
            given = [env.variables[n] for n in names if n in env.variables]
            if not given:
                problems.append(f"{at}: {' or '.join(names)} is not set ({cls} needs it)")
            elif given[0].kind == "secret" and given[0].optional:
                problems.append(f"{at}: {names[0]} comes from an optional Secret key")
        values = {}
        for name, source in env.variables.items():
            if name in reads:
                values[name] = (
                    source.value if source.value is not None else (_placeholder(reads[name]))
                )
        with _environment(values):
            try:
                load_settings(entry.settings)
            except ConfigError as exc:
                problems.append(f"{at}: {cls} refuses the manifests' values: {exc}")
    return problems


# --- Gateway exposure


def _workloads_running(objects: list[Obj], service: str) -> list[Obj]:
    found = []
    for workload in workloads(objects):
        for container in containers(workload):
            try:
                entry = _entry(container)
            except ValueError:
                continue
            if entry.kind == "service" and entry.name == service:
                found.append(workload)
    return found


def _services_for(objects: list[Obj], workload: Obj) -> list[Obj]:
    labels = labels_of_pods(workload)
    return [
        s
        for s in named(objects, "Service")
        if s["spec"].get("selector") and selects({"matchLabels": s["spec"]["selector"]}, labels)
    ]


def gateway_exposure(objects: list[Obj]) -> list[str]:
    """The gateway's Ingress publishes exactly its Autotask-facing routes (``/v1/`` prefixes, no
    ops path), over TLS, to the gateway's public port through a Service that exposes nothing
    else (never the ops port); the provisioner registers webhooks at that host, over https."""
    problems = []
    gateways = _workloads_running(objects, "webhook_gateway")
    if len(gateways) != 1:
        return [f"expected one gateway Deployment, found {len(gateways)}"]
    gateway = gateways[0]
    container = containers(gateway)[0]
    env = container_env(container, objects)
    port = _public_port(env, _entry(container))
    ops_port = _ops_port(env, _entry(container))
    services = _services_for(objects, gateway)
    ingresses = named(objects, "Ingress")
    if len(ingresses) != 1:
        return [f"expected one Ingress, found {len(ingresses)}"]
    ingress = ingresses[0]
    tls_hosts = {h for t in ingress["spec"].get("tls", []) for h in t.get("hosts", [])}
    paths = set()
    hosts = set()
    ops_paths = codebase.ops_routes()
    if ingress["spec"].get("defaultBackend"):
        problems.append("the Ingress has a default backend: it publishes every path")
    for rule in ingress["spec"].get("rules", []):
        hosts.add(rule.get("host"))
        if rule.get("host") not in tls_hosts:
            problems.append(f"Ingress host {rule.get('host')} is not covered by TLS")
        for path in rule.get("http", {}).get("paths", []):
            paths.add(path["path"])
            if not path["path"].startswith("/v1/") or path.get("pathType") != "Prefix":
                problems.append(f"Ingress path {path['path']} is not a /v1/ prefix")
            if any(p.startswith(path["path"]) for p in ops_paths):
                problems.append(f"Ingress path {path['path']} publishes an ops endpoint")
            backend = path["backend"]["service"]
            matching = [s for s in services if s["metadata"]["name"] == backend["name"]]
            if not matching:
                problems.append(f"Ingress path {path['path']} does not lead to the gateway")
                continue
            exposed = {
                container_port(container, p["targetPort"]) for p in matching[0]["spec"]["ports"]
            }
            if exposed != {port}:
                problems.append(
                    f"Service {backend['name']} behind the Ingress exposes ports "
                    f"{sorted(map(str, exposed))}, not only the public {port}"
                )
            if ops_port in exposed:
                problems.append(f"Service {backend['name']} exposes the ops port {ops_port}")
            ports = [
                p
                for p in matching[0]["spec"]["ports"]
                if p.get("name") == backend["port"].get("name")
                or p.get("port") == backend["port"].get("number")
            ]
            if not ports or container_port(container, ports[0]["targetPort"]) != port:
                problems.append(f"Ingress path {path['path']} does not reach port {port}")
    expected = codebase.gateway_route_prefixes()
    if paths != expected:
        problems.append(f"Ingress paths {sorted(paths)} are not the gateway's {sorted(expected)}")
    from services.provisioner.naming import callout_url, deactivation_url

    for workload, prov in pods(objects):
        try:
            entry = _entry(prov)
        except ValueError:
            continue
        if "gateway_public_url" not in entry.settings.model_fields:
            continue
        url = container_env(prov, objects).value("AUTOTASK_SYNC_GATEWAY_PUBLIC_URL") or ""
        parts = urlsplit(url)
        at = f"{ref(workload)}: AUTOTASK_SYNC_GATEWAY_PUBLIC_URL {url!r}"
        if parts.scheme != "https" or parts.port not in (None, 443):
            problems.append(f"{at} is not https on 443 (Autotask calls https:443 only)")
        if parts.hostname not in hosts:
            problems.append(f"{at} is not the Ingress host ({sorted(h for h in hosts if h)})")
        for make in (callout_url, deactivation_url):
            path = urlsplit(make(url, "r")).path
            if not any(path.startswith(p) for p in paths):
                problems.append(f"{at}: {path} is not published by the Ingress")
    return problems


# --- Scaling -------------------------------------------------------------------------------------


def _topic_prefix(objects: list[Obj], workload: Obj) -> str:
    container = containers(workload)[0]
    configured = container_env(container, objects).value("AUTOTASK_SYNC_TOPIC_PREFIX")
    return configured or str(codebase.default_of(codebase.service_settings("sync_worker"),
                                                 "topic_prefix"))  # fmt: skip


def _callouts_partitions(objects: list[Obj], workload: Obj) -> tuple[str, int]:
    prefix = _topic_prefix(objects, workload)
    topic = codebase.callouts_topic(prefix)
    return topic, codebase.topic_declarations(prefix)[topic][0]


def scaling(objects: list[Obj]) -> list[str]:
    """Worker replicas (and any KEDA maximum) at most the callouts topic's partitions, KEDA's
    trigger on the worker's own topic, group and brokers; the gateway HPA targets the gateway
    with 1 <= min <= replicas <= max; the gateway and the worker each have a PDB that still
    lets a node drain; the provisioner runs one replica."""
    problems = []
    for worker in _workloads_running(objects, "sync_worker"):
        topic, partitions = _callouts_partitions(objects, worker)
        replicas = worker["spec"].get("replicas", 1)
        if replicas > partitions:
            problems.append(f"{ref(worker)}: {replicas} replicas > {partitions} partitions")
        env = container_env(containers(worker)[0], objects)
        settings_cls = codebase.service_settings("sync_worker")
        group = env.value("AUTOTASK_SYNC_CONSUMER_GROUP") or codebase.default_of(
            settings_cls, "consumer_group"
        )
        brokers = env.value("AUTOTASK_SYNC_KAFKA_BOOTSTRAP_SERVERS") or env.value(
            "KAFKA_BOOTSTRAP_SERVERS"
        )
        for scaled in named(objects, "ScaledObject"):
            if scaled["spec"]["scaleTargetRef"]["name"] != worker["metadata"]["name"]:
                continue
            spec = scaled["spec"]
            if spec.get("maxReplicaCount", 100) > partitions:
                problems.append(f"{ref(scaled)}: maxReplicaCount > {partitions} partitions")
            if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
                problems.append(f"{ref(scaled)}: minReplicaCount > maxReplicaCount")
            for trigger in spec.get("triggers", []):
                if trigger["type"] != "kafka":
                    continue
                meta = trigger["metadata"]
                for key, want in (
                    ("topic", topic),
                    ("consumerGroup", group),
                    ("bootstrapServers", brokers),
                ):
                    if meta.get(key) != want:
                        problems.append(f"{ref(scaled)}: trigger {key} {meta.get(key)} != {want}")
    for gateway in _workloads_running(objects, "webhook_gateway"):
        hpas = [
            h
            for h in named(objects, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"]["name"] == gateway["metadata"]["name"]
            and h["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        ]
        if len(hpas) != 1:
            problems.append(f"{ref(gateway)}: {len(hpas)} HorizontalPodAutoscalers")
        for hpa in hpas:
            low, high = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
            replicas = gateway["spec"].get("replicas", 1)
            if not 1 <= low <= replicas <= high:
                problems.append(
                    f"{ref(hpa)}: not 1 <= min {low} <= replicas {replicas} <= max {high}"
                )
    for workload in [
        *_workloads_running(objects, "webhook_gateway"),
        *_workloads_running(objects, "sync_worker"),
    ]:
        labels = labels_of_pods(workload)
        budgets = [
            p
            for p in named(objects, "PodDisruptionBudget")
            if selects(p["spec"]["selector"], labels)
        ]
        if len(budgets) != 1:
            problems.append(f"{ref(workload)}: {len(budgets)} PodDisruptionBudgets")
        for budget in budgets:
            spec = budget["spec"]
            replicas = workload["spec"].get("replicas", 1)
            if "maxUnavailable" in spec:
                if int(spec["maxUnavailable"]) < 1:
                    problems.append(f"{ref(budget)}: maxUnavailable < 1 blocks every drain")
            elif int(spec.get("minAvailable", 0)) >= replicas:
                problems.append(f"{ref(budget)}: minAvailable >= replicas blocks every drain")
    for provisioner in _workloads_running(objects, "provisioner"):
        if provisioner["spec"].get("replicas", 1) != 1:
            problems.append(f"{ref(provisioner)}: the provisioner runs one replica")
    return problems


def production_scale(objects: list[Obj]) -> list[str]:
    """Production: at least three gateways, spread over zones and nodes, HPA minimum three."""
    problems = []
    for gateway in _workloads_running(objects, "webhook_gateway"):
        if gateway["spec"].get("replicas", 1) < 3:
            problems.append(f"{ref(gateway)}: fewer than 3 replicas")
        keys = {c["topologyKey"] for c in pod_spec(gateway).get("topologySpreadConstraints", [])}
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
            if key not in keys:
                problems.append(f"{ref(gateway)}: not spread over {key}")
        for hpa in named(objects, "HorizontalPodAutoscaler"):
            if hpa["spec"].get("minReplicas", 1) < 3:
                problems.append(f"{ref(hpa)}: minReplicas < 3")
    return problems


# --- Kafka topics


def kafka_topics(topics: list[Obj], app: list[Obj]) -> list[str]:
    """The KafkaTopic resources are exactly the topics the code declares (for the prefix the
    application is configured with): names, partitions and configs, replicas where declared;
    their Strimzi cluster is the one the application's bootstrap servers name."""
    problems = []
    workers = _workloads_running(app, "sync_worker")
    prefix = _topic_prefix(app, workers[0]) if workers else "autotask"
    declared = codebase.topic_declarations(prefix)
    seen = {}
    for topic in named(topics, "KafkaTopic"):
        name = topic["spec"].get("topicName", topic["metadata"]["name"])
        seen[name] = topic
    if set(seen) != set(declared):
        problems.append(
            f"topics: missing {sorted(set(declared) - set(seen))}, "
            f"undeclared {sorted(set(seen) - set(declared))}"
        )
    for name, (partitions, config, replication) in declared.items():
        declared_topic = seen.get(name)
        if declared_topic is None:
            continue
        spec = declared_topic["spec"]
        if spec.get("partitions") != partitions:
            problems.append(f"{name}: {spec.get('partitions')} partitions, declared {partitions}")
        given = {k: str(v) for k, v in (spec.get("config") or {}).items()}
        if given != config:
            problems.append(f"{name}: config {given} is not the declared {config}")
        replicas = spec.get("replicas")
        if replication > 0 and replicas != replication:
            problems.append(f"{name}: {replicas} replicas, declared {replication}")
        if replicas is not None and replicas < 1:
            problems.append(f"{name}: replicas {replicas}")
    clusters = {t["metadata"].get("labels", {}).get("strimzi.io/cluster") for t in seen.values()}
    if None in clusters or len(clusters) != 1:
        problems.append(f"topics name Strimzi clusters {clusters}")
    namespaces = {t["metadata"].get("namespace") for t in seen.values()}
    for workload, container in pods(app):
        brokers = container_env(container, app).value("AUTOTASK_SYNC_KAFKA_BOOTSTRAP_SERVERS")
        if brokers is None:
            continue
        for cluster in clusters:
            for namespace in namespaces:
                prefix_ = f"{cluster}-kafka-bootstrap.{namespace}."
                if not all(b.startswith(prefix_) for b in brokers.split(",")):
                    problems.append(
                        f"{ref(workload)}: bootstrap {brokers} is not Strimzi cluster "
                        f"{cluster} in namespace {namespace}"
                    )
        break
    return problems


# --- Network policies


def _policies_for(objects: list[Obj], workload: Obj, kind: str) -> list[Obj]:
    labels = labels_of_pods(workload)
    return [
        p
        for p in named(objects, "NetworkPolicy")
        if kind in p["spec"].get("policyTypes", []) and selects(p["spec"]["podSelector"], labels)
    ]


def _port_numbers(rule: Obj, container: Obj) -> set[int | None]:
    return {container_port(container, p.get("port", "")) for p in rule.get("ports", [])}


def network(objects: list[Obj]) -> list[str]:
    """Default deny both ways; the gateway admits the ingress controller on its public port
    only; every service admits Prometheus on its ops port only; egress only to DNS, PostgreSQL,
    Kafka and, for what calls Autotask (settings derived from AutotaskSettings), https to public
    addresses. The gateway never reaches Autotask."""
    problems = []
    denies = [
        p
        for p in named(objects, "NetworkPolicy")
        if p["spec"].get("podSelector") == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not denies:
        problems.append("no default-deny NetworkPolicy")
    kafka_ports = {9092, 9093}
    for workload in workloads(objects):
        container = containers(workload)[0]
        at = ref(workload)
        try:
            entry = _entry(container)
        except ValueError:
            continue
        for policy in _policies_for(objects, workload, "Ingress"):
            for rule in policy["spec"].get("ingress", []):
                peers = rule.get("from", [])
                if not peers or not rule.get("ports"):
                    problems.append(f"{at}: {ref(policy)} admits any peer or any port")
                env = container_env(container, objects)
                for peer in peers:
                    namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
                    source = namespace.get("kubernetes.io/metadata.name")
                    # Which port each peer may reach: Prometheus the ops port, the ingress
                    # controller the gateway's public port.
                    allowed: dict[str | None, int] = {}
                    if entry.kind == "service":
                        allowed["monitoring"] = _ops_port(env, entry)
                        if entry.name == "webhook_gateway":
                            allowed["ingress-nginx"] = _public_port(env, entry)
                    if "ipBlock" in peer or source not in allowed or not peer.get("podSelector"):
                        problems.append(f"{at}: {ref(policy)} admits {peer}")
                        continue
                    if _port_numbers(rule, container) != {allowed[source]}:
                        problems.append(
                            f"{at}: {ref(policy)} admits {source} to ports other than "
                            f"{allowed[source]}"
                        )
        egress_ports: set[int | None] = set()
        public_https = False
        for policy in _policies_for(objects, workload, "Egress"):
            for rule in policy["spec"].get("egress", []):
                if not rule.get("to") or not rule.get("ports"):
                    problems.append(f"{at}: {ref(policy)} lets it reach any peer or any port")
                ports = _port_numbers(rule, container)
                egress_ports |= ports
                for peer in rule.get("to", []):
                    block = peer.get("ipBlock")
                    if block and block["cidr"] in ("0.0.0.0/0", "::/0"):
                        public_https = public_https or ports == {443}
                        if ports != {443}:
                            problems.append(f"{at}: {ref(policy)} opens the internet beyond 443")
                        if block["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" not in block.get(
                            "except", []
                        ):
                            problems.append(f"{at}: {ref(policy)} reaches private addresses")
        calls_autotask = issubclass(entry.settings, AutotaskSettings)
        if calls_autotask and not public_https:
            problems.append(f"{at}: cannot reach Autotask (https to public addresses)")
        if not calls_autotask and public_https:
            problems.append(f"{at}: reaches the internet but never calls Autotask")
        allowed_ports: set[int | None] = {53, 5432, 443, *kafka_ports}
        if egress_ports - allowed_ports:
            problems.append(
                f"{at}: egress to ports {sorted(map(str, egress_ports - allowed_ports))}"
            )
        for needed in (53, 5432):
            if needed not in egress_ports:
                problems.append(f"{at}: no egress to port {needed}")
        brokers = container_env(container, objects).value("AUTOTASK_SYNC_KAFKA_BOOTSTRAP_SERVERS")
        if entry.kind == "service" and brokers:
            for broker in brokers.split(","):
                if int(broker.rsplit(":", 1)[1]) not in egress_ports:
                    problems.append(f"{at}: cannot reach Kafka at {broker}")
    return problems


# --- Monitoring


def _check_query(expr: str, where: str) -> list[str]:
    problems = []
    try:
        found = selectors(expr)
    except PromQLError as exc:
        return [f"{where}: {exc}"]
    samples = codebase.metric_samples()
    for selector in found:
        name = selector.metric
        if name is None or name in PROMETHEUS_SERIES:
            continue
        family = samples.get(name)
        if family is None:
            problems.append(f"{where}: {name} is not a metric the code defines")
            continue
        if family.labels is None:
            continue
        extra = {"le"} if name.endswith("_bucket") else set()
        unknown = selector.labels - family.labels - TARGET_LABELS - extra
        if unknown:
            problems.append(f"{where}: {name} has no label {sorted(unknown)}")
    if not any(s.metric and s.metric.startswith("autotask_sync_") for s in found) and not any(
        s.metric in PROMETHEUS_SERIES for s in found
    ):
        problems.append(f"{where}: queries none of the services' metrics")
    return problems


def _anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def alert_rules(objects: list[Obj]) -> list[str]:
    """Every alert: an expression that parses and queries only metrics (and labels) the code
    defines, a severity, a summary, a description and a runbook section that exists."""
    problems = []
    anchors = _anchors(README.read_text()) if README.exists() else set()
    rules = named(objects, "PrometheusRule")
    if not rules:
        return ["no PrometheusRule"]
    for rule_set in rules:
        for group in rule_set["spec"]["groups"]:
            for rule in group["rules"]:
                where = f"{ref(rule_set)} {rule.get('alert') or rule.get('record')}"
                problems += _check_query(str(rule["expr"]), where)
                if "alert" not in rule:
                    continue
                if rule.get("labels", {}).get("severity") not in ALERT_SEVERITIES:
                    problems.append(f"{where}: severity not one of {sorted(ALERT_SEVERITIES)}")
                annotations = rule.get("annotations", {})
                for key in ("summary", "description", "runbook"):
                    if not annotations.get(key):
                        problems.append(f"{where}: no {key} annotation")
                runbook = annotations.get("runbook", "")
                path, _, anchor = runbook.partition("#")
                if path != "deploy/README.md" or anchor not in anchors:
                    problems.append(
                        f"{where}: runbook {runbook!r} is not a deploy/README.md section"
                    )
    return problems


def _dashboards(objects: list[Obj]) -> list[tuple[str, Obj]]:
    found = []
    for configmap in named(objects, "ConfigMap"):
        if configmap["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            for key, text in configmap.get("data", {}).items():
                found.append((f"{ref(configmap)}/{key}", json.loads(text)))
    return found


def _panels(dashboard: Obj) -> Iterator[Obj]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard(objects: list[Obj]) -> list[str]:
    """The Grafana dashboard (a ConfigMap for the sidecar): a ${datasource} variable every
    panel uses, a per-connection variable, and queries that parse and use only metrics (and
    labels) the code defines."""
    problems = []
    boards = _dashboards(objects)
    if not boards:
        return ["no ConfigMap labelled grafana_dashboard: '1'"]
    for where, board in boards:
        variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
        if variables.get("datasource", {}).get("type") != "datasource":
            problems.append(f"{where}: no datasource variable")
        connection = variables.get("connection")
        if connection is None:
            problems.append(f"{where}: no connection variable")
        else:
            query = connection.get("query")
            text = query.get("query") if isinstance(query, dict) else query
            if "connection" not in str(text):
                problems.append(f"{where}: the connection variable does not list connections")
        for variable in variables.values():
            query = variable.get("query")
            text = query.get("query") if isinstance(query, dict) else None
            if text and text.startswith("label_values("):
                inner = text[len("label_values(") : text.rindex(",")]
                problems += _check_query(grafana_to_promql(inner), f"{where} ${variable['name']}")
        for panel in _panels(board):
            if panel.get("type") == "row":
                continue
            at = f"{where} panel {panel.get('title')!r}"
            if panel.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"{at}: does not use ${{datasource}}")
            if not panel.get("targets"):
                problems.append(f"{at}: no queries")
            for target in panel.get("targets", []):
                problems += _check_query(grafana_to_promql(target["expr"]), at)
    return problems


def referenced_metrics(objects: list[Obj], kind: str) -> set[str]:
    """The metric names the alert rules (kind PrometheusRule) or dashboards query."""
    exprs: list[str] = []
    if kind == "PrometheusRule":
        exprs = [
            str(r["expr"])
            for o in named(objects, kind)
            for g in o["spec"]["groups"]
            for r in g["rules"]
        ]
    else:
        exprs = [
            grafana_to_promql(t["expr"])
            for _, board in _dashboards(objects)
            for panel in _panels(board)
            for t in panel.get("targets", [])
        ]
    return {s.metric for e in exprs for s in selectors(e) if s.metric}


def scraping(objects: list[Obj]) -> list[str]:
    """Every long-running service's pods are behind a Service whose port, the pods' ops port, a
    ServiceMonitor scrapes at the metrics path the services serve; no monitor scrapes another
    port of theirs (the gateway's public one answers 404 there)."""
    problems = []
    monitors = named(objects, "ServiceMonitor")
    if not monitors:
        return ["no ServiceMonitor"]
    served = codebase.ops_routes()
    for workload in workloads(objects):
        container = containers(workload)[0]
        try:
            entry = _entry(container)
        except ValueError:
            continue
        if entry.kind != "service":
            continue
        port = _ops_port(container_env(container, objects), entry)
        scraped = False
        for service in _services_for(objects, workload):
            names = {
                p.get("name")
                for p in service["spec"]["ports"]
                if container_port(container, p["targetPort"]) == port
            }
            others = {p.get("name") for p in service["spec"]["ports"]} - names
            for monitor in monitors:
                if not selects(monitor["spec"]["selector"], service["metadata"].get("labels", {})):
                    continue
                for endpoint in monitor["spec"]["endpoints"]:
                    if endpoint.get("port") in names and endpoint.get("path", "/metrics") in served:
                        scraped = True
                    if endpoint.get("port") in others:
                        problems.append(
                            f"{ref(monitor)} scrapes {ref(service)} port {endpoint.get('port')}, "
                            "not the ops port"
                        )
        if not scraped:
            problems.append(f"{ref(workload)}: no ServiceMonitor scrapes its /metrics")
    return problems


APP_RULES: dict[str, Rule] = {
    "security": security,
    "image_version": image_version,
    "entry_points": entry_points,
    "probes": probes,
    "settings": settings,
    "gateway_exposure": gateway_exposure,
    "scaling": scaling,
    "network": network,
    "alert_rules": alert_rules,
    "dashboard": dashboard,
    "scraping": scraping,
}
"""Rules every application rendering (dev, prod, prod with the options) must keep."""
