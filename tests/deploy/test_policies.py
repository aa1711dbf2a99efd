"""The deployment policies (tests/deploy/rules.py) on every rendering of deploy/k8s, and each
rule on a rendering broken on purpose, to show it can fail."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.deploy import rules
from tests.deploy.codebase import metric_samples, topic_default_partitions
from tests.deploy.conftest import Render
from tests.deploy.manifests import Obj, containers, mutated, named, one, pod_spec
from tools.dev_infra import kustomize
from tools.dev_infra.kustomize import VARIANTS

TOPIC_SUFFIX = "-kafka-topics"
APP_VARIANTS = [name for name in VARIANTS if not name.endswith(TOPIC_SUFFIX)]
TOPIC_VARIANTS = [name for name in VARIANTS if name.endswith(TOPIC_SUFFIX)]
PRODUCTION = [name for name in APP_VARIANTS if name.startswith("prod")]


@pytest.mark.parametrize("rule", sorted(rules.APP_RULES))
@pytest.mark.parametrize("variant", APP_VARIANTS)
def test_every_rendering_keeps_the_rule(render: Render, variant: str, rule: str) -> None:
    assert rules.APP_RULES[rule](render(variant)) == []


@pytest.mark.parametrize("variant", PRODUCTION)
def test_production_runs_three_spread_gateways(render: Render, variant: str) -> None:
    assert rules.production_scale(render(variant)) == []


@pytest.mark.parametrize("variant", TOPIC_VARIANTS)
def test_kafka_topics_are_the_declared_ones(render: Render, variant: str) -> None:
    app = render(variant.removesuffix(TOPIC_SUFFIX))
    assert rules.kafka_topics(render(variant), app) == []


def test_the_topics_file_is_written_from_the_code() -> None:
    assert kustomize.TOPICS_FILE.read_text() == kustomize.kafka_topics_yaml(), (
        "deploy/k8s/kafka-topics/topics.yaml is stale: run `python -m tools kustomize topics`"
    )


def test_each_variant_renders_the_optional_parts_it_names(render: Render) -> None:
    options = render("prod-options")
    assert named(options, "ScaledObject"), "the KEDA component renders a ScaledObject"
    assert named(options, "CronJob"), "the reconciler-cronjobs component renders a CronJob"
    worker_config = [c for c in named(options, "ConfigMap") if "worker" in c["metadata"]["name"]]
    assert [c["data"]["AUTOTASK_SYNC_SWEEPS_ENABLED"] for c in worker_config] == ["false"]
    assert named(render("prod-reconciler"), "Deployment", "autotask-sync-reconciler")
    assert not named(render("prod"), "CronJob")


# --- Each rule can fail --------------------------------------------------------------------------

Mutation = Callable[[list[Obj]], None]


def _deployment(objects: list[Obj], name: str) -> Obj:
    return one(objects, "Deployment", f"autotask-sync-{name}")


def _container(objects: list[Obj], name: str) -> Obj:
    return containers(_deployment(objects, name))[0]


def _writable_root(objects: list[Obj]) -> None:
    _container(objects, "worker")["securityContext"]["readOnlyRootFilesystem"] = False


def _root_user(objects: list[Obj]) -> None:
    _container(objects, "gateway")["securityContext"]["runAsUser"] = 0


def _named_user(objects: list[Obj]) -> None:
    deployment = _deployment(objects, "gateway")
    pod_spec(deployment)["securityContext"].pop("runAsUser")
    containers(deployment)[0]["securityContext"]["runAsUser"] = "autotask-sync"


def _escalation(objects: list[Obj]) -> None:
    _container(objects, "provisioner")["securityContext"].pop("allowPrivilegeEscalation")


def _capabilities(objects: list[Obj]) -> None:
    _container(objects, "gateway")["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"]}


def _seccomp(objects: list[Obj]) -> None:
    deployment = _deployment(objects, "worker")
    pod_spec(deployment)["securityContext"].pop("seccompProfile")
    containers(deployment)[0]["securityContext"].pop("seccompProfile")


def _no_limits(objects: list[Obj]) -> None:
    job = one(objects, "Job", "autotask-sync-migrate")
    containers(job)[0]["resources"].pop("limits")


def _no_tmp(objects: list[Obj]) -> None:
    _container(objects, "gateway")["volumeMounts"] = []


def _token(objects: list[Obj]) -> None:
    pod_spec(_deployment(objects, "worker"))["automountServiceAccountToken"] = True


def _latest(objects: list[Obj]) -> None:
    container = _container(objects, "worker")
    container["image"] = container["image"].rsplit(":", 1)[0] + ":latest"


def _unknown_module(objects: list[Obj]) -> None:
    _container(objects, "worker")["command"] = ["python", "-m", "services.sync_wroker"]


def _bad_arguments(objects: list[Obj]) -> None:
    job = one(objects, "Job", "autotask-sync-provision-apply")
    containers(job)[0]["command"] = ["autotask-sync", "provision", "aply"]


def _readiness_on_healthz(objects: list[Obj]) -> None:
    _container(objects, "gateway")["readinessProbe"]["httpGet"]["path"] = "/healthz"


def _probe_wrong_port(objects: list[Obj]) -> None:
    _container(objects, "worker")["livenessProbe"]["httpGet"]["port"] = 9090


def _port_setting_moved(objects: list[Obj]) -> None:
    _container(objects, "provisioner").setdefault("env", []).append(
        {"name": "AUTOTASK_SYNC_OPS_PORT", "value": "9000"}
    )


def _probe_on_public_port(objects: list[Obj]) -> None:
    _container(objects, "gateway")["livenessProbe"]["httpGet"]["port"] = "http"


def _ops_on_public_port(objects: list[Obj]) -> None:
    ports = _container(objects, "gateway")["ports"]
    next(p for p in ports if p["name"] == "ops")["containerPort"] = 8080
    _container(objects, "gateway").setdefault("env", []).append(
        {"name": "AUTOTASK_SYNC_OPS_PORT", "value": "8080"}
    )


def _unknown_variable(objects: list[Obj]) -> None:
    _container(objects, "worker")["env"].append(
        {"name": "AUTOTASK_SYNC_WORKER_THREADS", "value": "4"}
    )


def _variable_of_another_service(objects: list[Obj]) -> None:
    _container(objects, "gateway")["env"].append(
        {"name": "AUTOTASK_SYNC_CONSUMER_GROUP", "value": "x"}
    )


def _secret_in_config(objects: list[Obj]) -> None:
    config = next(c for c in named(objects, "ConfigMap") if "common" in c["metadata"]["name"])
    config["data"]["AUTOTASK_SYNC_SECRET_KEYS"] = "a-key-in-plain-sight"


def _database_unset(objects: list[Obj]) -> None:
    container = _container(objects, "worker")
    container["env"] = [e for e in container["env"] if "DATABASE_URL" not in e["name"]]


def _secret_keys_optional(objects: list[Obj]) -> None:
    env = _container(objects, "gateway")["env"]
    keys = next(e for e in env if e["name"] == "AUTOTASK_SYNC_SECRET_KEYS")
    keys["valueFrom"]["secretKeyRef"]["optional"] = True


def _malformed_value(objects: list[Obj]) -> None:
    config = next(c for c in named(objects, "ConfigMap") if "provisioner" in c["metadata"]["name"])
    config["data"]["AUTOTASK_SYNC_WEBHOOK_ENTITIES"] = "Tickets,Invoices"


def _ingress_publishes_metrics(objects: list[Obj]) -> None:
    ingress = named(objects, "Ingress")[0]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    paths.append({**paths[0], "path": "/metrics"})


def _ingress_publishes_everything(objects: list[Obj]) -> None:
    ingress = named(objects, "Ingress")[0]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    paths.append({**paths[0], "path": "/"})


def _ingress_outside_v1(objects: list[Obj]) -> None:
    ingress = named(objects, "Ingress")[0]
    ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/callouts/"


def _public_service_exposes_ops(objects: list[Obj]) -> None:
    service = one(objects, "Service", "autotask-sync-gateway")
    service["spec"]["ports"].append(
        {"name": "ops", "port": 9080, "targetPort": "ops", "protocol": "TCP"}
    )


def _public_url_elsewhere(objects: list[Obj]) -> None:
    config = next(c for c in named(objects, "ConfigMap") if "provisioner" in c["metadata"]["name"])
    config["data"]["AUTOTASK_SYNC_GATEWAY_PUBLIC_URL"] = "https://other.example.com"


def _too_many_workers(objects: list[Obj]) -> None:
    _deployment(objects, "worker")["spec"]["replicas"] = topic_default_partitions() + 1


def _hpa_inverted(objects: list[Obj]) -> None:
    named(objects, "HorizontalPodAutoscaler")[0]["spec"]["minReplicas"] = 20


def _no_worker_pdb(objects: list[Obj]) -> None:
    objects.remove(one(objects, "PodDisruptionBudget", "autotask-sync-worker"))


def _blocking_pdb(objects: list[Obj]) -> None:
    budget = one(objects, "PodDisruptionBudget", "autotask-sync-gateway")
    budget["spec"] = {"minAvailable": 99, "selector": budget["spec"]["selector"]}


def _two_provisioners(objects: list[Obj]) -> None:
    _deployment(objects, "provisioner")["spec"]["replicas"] = 2


def _no_default_deny(objects: list[Obj]) -> None:
    objects.remove(one(objects, "NetworkPolicy", "autotask-sync-default-deny"))


def _gateway_open_to_all(objects: list[Obj]) -> None:
    policy = one(objects, "NetworkPolicy", "autotask-sync-gateway-ingress")
    policy["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}})


def _prometheus_on_public_port(objects: list[Obj]) -> None:
    policy = one(objects, "NetworkPolicy", "autotask-sync-ops-ingress")
    policy["spec"]["ingress"][0]["ports"].append({"port": "http", "protocol": "TCP"})


def _ingress_controller_on_ops_port(objects: list[Obj]) -> None:
    policy = one(objects, "NetworkPolicy", "autotask-sync-gateway-ingress")
    policy["spec"]["ingress"][0]["ports"] = [{"port": "ops", "protocol": "TCP"}]


def _gateway_to_internet(objects: list[Obj]) -> None:
    policy = one(objects, "NetworkPolicy", "autotask-sync-egress-autotask")
    policy["spec"]["podSelector"]["matchExpressions"][1]["values"].append("gateway")


def _worker_cut_off_from_autotask(objects: list[Obj]) -> None:
    objects.remove(one(objects, "NetworkPolicy", "autotask-sync-egress-autotask"))


def _alert_on_unknown_metric(objects: list[Obj]) -> None:
    rule = named(objects, "PrometheusRule")[0]["spec"]["groups"][0]["rules"][0]
    rule["expr"] = "max(autotask_sync_gateway_spool_depth) > 0"


def _alert_on_unknown_label(objects: list[Obj]) -> None:
    rule = named(objects, "PrometheusRule")[0]["spec"]["groups"][0]["rules"][0]
    rule["expr"] = 'max(autotask_sync_worker_consumer_lag{connection="x"}) > 0'


def _alert_without_runbook(objects: list[Obj]) -> None:
    rule = named(objects, "PrometheusRule")[0]["spec"]["groups"][0]["rules"][0]
    rule["annotations"]["runbook"] = "deploy/README.md#no-such-section"


def _alert_unparsable(objects: list[Obj]) -> None:
    rule = named(objects, "PrometheusRule")[0]["spec"]["groups"][0]["rules"][0]
    rule["expr"] = "sum by (namespace (autotask_sync_gateway_spool_rows)"


def _panel_on_unknown_metric(objects: list[Obj]) -> None:
    import json

    config = next(
        c
        for c in named(objects, "ConfigMap")
        if c["metadata"].get("labels", {}).get("grafana_dashboard")
    )
    key = next(iter(config["data"]))
    board = json.loads(config["data"][key])
    board["panels"][1]["targets"][0]["expr"] = "rate(autotask_sync_callouts_total[5m])"
    config["data"][key] = json.dumps(board)


def _panel_with_fixed_datasource(objects: list[Obj]) -> None:
    import json

    config = next(
        c
        for c in named(objects, "ConfigMap")
        if c["metadata"].get("labels", {}).get("grafana_dashboard")
    )
    key = next(iter(config["data"]))
    board = json.loads(config["data"][key])
    board["panels"][1]["datasource"] = {"type": "prometheus", "uid": "prom-1"}
    config["data"][key] = json.dumps(board)


def _unscraped_worker(objects: list[Obj]) -> None:
    objects.remove(one(objects, "ServiceMonitor", "autotask-sync-worker"))


def _gateway_scraped_on_public_port(objects: list[Obj]) -> None:
    monitor = one(objects, "ServiceMonitor", "autotask-sync-gateway")
    monitor["spec"]["endpoints"][0]["port"] = "http"


BREAKAGES: dict[str, tuple[str, Mutation]] = {
    "writable root filesystem": ("security", _writable_root),
    "root user": ("security", _root_user),
    "user name instead of uid": ("security", _named_user),
    "privilege escalation allowed": ("security", _escalation),
    "capabilities kept": ("security", _capabilities),
    "no seccomp profile": ("security", _seccomp),
    "no limits": ("security", _no_limits),
    "no /tmp emptyDir": ("security", _no_tmp),
    "token mounted": ("security", _token),
    "latest image": ("security", _latest),
    "unknown module": ("entry_points", _unknown_module),
    "arguments the CLI refuses": ("entry_points", _bad_arguments),
    "readiness on the liveness path": ("probes", _readiness_on_healthz),
    "probe on another port": ("probes", _probe_wrong_port),
    "port setting moved": ("probes", _port_setting_moved),
    "probe on the public port": ("probes", _probe_on_public_port),
    "ops endpoints on the public port": ("probes", _ops_on_public_port),
    "variable nothing reads": ("settings", _unknown_variable),
    "variable of another service": ("settings", _variable_of_another_service),
    "secret in a ConfigMap": ("settings", _secret_in_config),
    "database URL unset": ("settings", _database_unset),
    "secret keys optional": ("settings", _secret_keys_optional),
    "value the settings refuse": ("settings", _malformed_value),
    "metrics published": ("gateway_exposure", _ingress_publishes_metrics),
    "every path published": ("gateway_exposure", _ingress_publishes_everything),
    "ingress path outside /v1/": ("gateway_exposure", _ingress_outside_v1),
    "public Service exposes the ops port": ("gateway_exposure", _public_service_exposes_ops),
    "webhooks registered at another host": ("gateway_exposure", _public_url_elsewhere),
    "more workers than partitions": ("scaling", _too_many_workers),
    "HPA minimum above maximum": ("scaling", _hpa_inverted),
    "worker without PDB": ("scaling", _no_worker_pdb),
    "PDB blocking drains": ("scaling", _blocking_pdb),
    "two provisioners": ("scaling", _two_provisioners),
    "no default deny": ("network", _no_default_deny),
    "gateway open to every namespace": ("network", _gateway_open_to_all),
    "gateway reaching the internet": ("network", _gateway_to_internet),
    "Prometheus admitted to the public port": ("network", _prometheus_on_public_port),
    "ingress controller admitted to the ops port": ("network", _ingress_controller_on_ops_port),
    "worker cut off from Autotask": ("network", _worker_cut_off_from_autotask),
    "alert on a metric the code lacks": ("alert_rules", _alert_on_unknown_metric),
    "alert on a label the metric lacks": ("alert_rules", _alert_on_unknown_label),
    "alert without runbook": ("alert_rules", _alert_without_runbook),
    "alert that does not parse": ("alert_rules", _alert_unparsable),
    "panel on a metric the code lacks": ("dashboard", _panel_on_unknown_metric),
    "panel with a fixed datasource": ("dashboard", _panel_with_fixed_datasource),
    "worker not scraped": ("scraping", _unscraped_worker),
    "gateway scraped on its public port": ("scraping", _gateway_scraped_on_public_port),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_rule_catches_a_breakage(render: Render, breakage: str) -> None:
    rule, mutate = BREAKAGES[breakage]
    objects = mutated(render("prod"))
    mutate(objects)
    assert rules.APP_RULES[rule](objects) != []


def test_every_rule_has_a_breakage() -> None:
    assert {rule for rule, _ in BREAKAGES.values()} >= set(rules.APP_RULES) - {"image_version"}


def test_image_version_rule_catches_another_tag(render: Render) -> None:
    objects = mutated(render("prod"))
    container = _container(objects, "gateway")
    container["image"] = container["image"].rsplit(":", 1)[0] + ":0.0.9"
    assert rules.image_version(objects) != []


def test_production_rule_catches_a_single_gateway(render: Render) -> None:
    assert rules.production_scale(render("dev")) != []


def test_topic_rule_catches_drift(render: Render) -> None:
    app = render("prod")
    for change in ("partitions", "config", "missing", "cluster"):
        topics = mutated(render("prod-kafka-topics"))
        first = topics[0]
        if change == "partitions":
            first["spec"]["partitions"] += 1
        elif change == "config":
            first["spec"]["config"]["cleanup.policy"] = "compact,delete"
        elif change == "missing":
            topics.remove(first)
        else:
            first["metadata"]["labels"]["strimzi.io/cluster"] = "other"
        assert rules.kafka_topics(topics, app) != [], change


def test_keda_rule_catches_a_trigger_on_another_group(render: Render) -> None:
    objects = mutated(render("prod-options"))
    scaled = named(objects, "ScaledObject")[0]
    scaled["spec"]["triggers"][0]["metadata"]["consumerGroup"] = "someone-else"
    assert rules.scaling(objects) != []
    scaled["spec"]["triggers"][0]["metadata"]["consumerGroup"] = "autotask-sync-worker"
    scaled["spec"]["maxReplicaCount"] = topic_default_partitions() + 1
    assert rules.scaling(objects) != []


# --- What the issue asks the dashboard and the alerts to cover ------------------------------------

DASHBOARD_COVERS = {
    "callouts accepted and rejected by outcome": "autotask_sync_gateway_requests_total",
    "spool depth": "autotask_sync_gateway_spool_rows",
    "consumer lag": "autotask_sync_worker_consumer_lag",
    "API usage per connection": "autotask_sync_autotask_budget_used_ratio",
    "repaired counts": "autotask_sync_sweep_repaired_total",
    "dead letters": "autotask_sync_worker_dead_letters_total",
    "end-to-end latency": "autotask_sync_worker_end_to_end_seconds_bucket",
}
ALERTS_COVER = {
    "spool not draining": "autotask_sync_gateway_spool_oldest_age_seconds",
    "consumer lag growing": "autotask_sync_worker_consumer_lag",
    "dead letters arriving": "autotask_sync_worker_dead_letters_total",
    "repaired counts high": "autotask_sync_sweep_repaired_total",
    "API budget above 80%": "autotask_sync_autotask_budget_used_ratio",
    "webhook deactivated": "autotask_sync_gateway_deactivation_checks_total",
    "webhook not ready": "autotask_sync_provisioner_webhooks",
}


@pytest.mark.parametrize(
    ("kind", "covers"), [("dashboard", DASHBOARD_COVERS), ("PrometheusRule", ALERTS_COVER)]
)
def test_monitoring_covers_what_operators_watch(
    render: Render, kind: str, covers: dict[str, str]
) -> None:
    referenced = rules.referenced_metrics(render("prod"), kind)
    samples = metric_samples()
    assert {what: m for what, m in covers.items() if m not in samples} == {}
    assert {what: m for what, m in covers.items() if m not in referenced} == {}
