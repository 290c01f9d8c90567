"""deploy/k8s/: the kustomization renders, every manifest is valid Kubernetes, and the probes, ports,
settings and shutdown timings agree with the code.

Offline: the kustomization is rendered here (its resources, ``labels`` and
``images``, the only features it uses) and each manifest is validated against
Kubernetes' own JSON schemas, vendored in tests/k8s_schemas/ (strict: an
unknown or misspelt field is an error; tests/support/vendor_k8s_schemas.py
made them from the kubernetes-validate package).
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from ingress import gunicorn_conf
from ingress.surface import DEFAULT_ADMIN_BIND, PUBLIC_PATHS
from shared import config
from shared.config import Settings, env_names
from workers.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "k8s_schemas" / "v1.33.0"


def render(directory: Path = K8S) -> list[dict]:
    """What ``kubectl kustomize`` makes of the base: its resources, with ``labels`` and ``images`` applied."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "labels", "resources", "images"}
    assert set(kustomization) <= known, f"teach render() {set(kustomization) - known}"
    images = {i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}" for i in kustomization.get("images", [])}
    docs = []
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((directory / resource).read_text()):
            if not doc:
                continue
            for entry in kustomization.get("labels", []):
                assert not entry.get("includeSelectors") and not entry.get("includeTemplates")
                doc.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
            for c in _containers(doc):
                c["image"] = images.get(c["image"], c["image"])
            docs.append(doc)
    return docs


def _containers(doc: dict) -> list[dict]:
    if doc.get("kind") != "Deployment":
        return []
    return doc["spec"]["template"]["spec"]["containers"]


def validator(doc: dict) -> jsonschema.protocols.Validator:
    name = f"{doc['kind'].lower()}-{doc['apiVersion'].replace('/', '-')}.json"
    path = SCHEMAS / name
    assert path.exists(), f"no vendored schema for {doc['apiVersion']} {doc['kind']} (tests/support/vendor_k8s_schemas.py)"
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(doc).iter_errors(doc)]


DOCS = render()
BY_NAME = {(d["kind"], d["metadata"]["name"]): d for d in DOCS}


def deployment(component: str) -> dict:
    return BY_NAME["Deployment", f"linesync-{component}"]


def container(component: str) -> dict:
    (c,) = _containers(deployment(component))
    return c


def configmap() -> dict[str, str]:
    return BY_NAME["ConfigMap", "linesync-config"]["data"]


def _port(c: dict, ref: int | str) -> int:
    return ref if isinstance(ref, int) else next(p["containerPort"] for p in c["ports"] if p["name"] == ref)


def test_every_manifest_file_is_in_the_kustomization():
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_is_valid_kubernetes(doc):
    assert _errors(doc) == []


def test_the_schemas_catch_a_misspelt_field_and_a_wrong_type():
    doc = copy.deepcopy(deployment("worker"))
    c = doc["spec"]["template"]["spec"]["containers"][0]
    c["livenesProbe"] = c.pop("livenessProbe")
    doc["spec"]["replicas"] = "two"
    errors = "\n".join(_errors(doc))
    assert "livenesProbe" in errors and "replicas" in errors


def test_images_and_labels_are_applied():
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for component in ("ingress", "worker", "beat"):
        assert container(component)["image"] == f"linesync:{version}"  # the release the base describes
        assert deployment(component)["metadata"]["labels"]["app.kubernetes.io/part-of"] == "linesync"


def test_every_deployment_has_probes_resources_scrape_annotations_and_the_settings():
    for component in ("ingress", "worker", "beat"):
        d, c = deployment(component), container(component)
        pod = d["spec"]["template"]
        assert d["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert probe in c, f"{component}: no {probe}"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{component}: resources.{kind}"
        notes = pod["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/path"] == "/metrics"
        assert int(notes["prometheus.io/port"]) in {p["containerPort"] for p in c["ports"]}
        assert {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in c["envFrom"]} == {
            "linesync-config", "linesync-secrets"}
        assert c["args"][:2] == ["linesync", component]


def _bind_port(bind: str) -> int:
    return int(bind.rsplit(":", 1)[1])


def test_ingress_probes_and_ports_match_the_code():
    c = container("ingress")
    args = c["args"]
    public, admin = args[args.index("--bind") + 1], args[args.index("--admin-bind") + 1]
    assert _bind_port(public) == _bind_port(gunicorn_conf.DEFAULT_BIND)
    assert admin == configmap()["LINESYNC_ADMIN_BIND"] == f"0.0.0.0:{_bind_port(DEFAULT_ADMIN_BIND)}"
    assert _bind_port(Settings().admin_bind) == _bind_port(DEFAULT_ADMIN_BIND)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path and path in PUBLIC_PATHS
        assert _port(c, get["port"]) == _bind_port(public)
    notes = deployment("ingress")["spec"]["template"]["metadata"]["annotations"]
    assert int(notes["prometheus.io/port"]) == _bind_port(admin)  # /metrics is on the admin bind only
    (svc_port,) = BY_NAME["Service", "linesync-ingress"]["spec"]["ports"]
    assert _port(c, svc_port["targetPort"]) == _bind_port(public)  # the Service never exposes the admin bind


@pytest.mark.parametrize("component, setting", [("worker", "LINESYNC_WORKER_METRICS_PORT"),
                                                ("beat", "LINESYNC_BEAT_METRICS_PORT")])
def test_worker_and_beat_probe_their_metrics_port(component, setting):
    c = container(component)
    port = int(configmap()[setting])
    name = next(n for n, env in env_names().items() if env == setting)
    assert port == getattr(Settings(), name) != 9090  # the code's default, not Prometheus's own port
    notes = deployment(component)["spec"]["template"]["metadata"]["annotations"]
    assert int(notes["prometheus.io/port"]) == port
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz" and _port(c, get["port"]) == port


def test_settings_and_secrets_are_real_variables_and_secrets_stay_in_the_secret():
    known = set(env_names().values())
    secret_vars = {f.env for f in config._FIELDS.values() if f.secret}
    settings = set(configmap())
    assert settings <= known, settings - known
    assert not settings & secret_vars
    secret = BY_NAME["Secret", "linesync-secrets"]["stringData"]
    assert set(secret) <= secret_vars
    assert {"REDIS_URL", "LINE_CHANNEL_SECRET", "BRAZE_API_KEY"} <= set(secret)
    assert all("change-me" in v for v in secret.values()), "example values only"
    # What the processes require is set somewhere.
    for role in ("ingress", "worker", "resync"):
        for name in config.ROLE_REQUIREMENTS[role]:
            assert env_names()[name] in settings | set(secret), f"{role} needs {env_names()[name]}"


def test_shutdown_timings_match_the_code():
    ingress = deployment("ingress")["spec"]["template"]["spec"]
    sleep = int(container("ingress")["lifecycle"]["preStop"]["exec"]["command"][1])
    assert ingress["terminationGracePeriodSeconds"] > sleep + gunicorn_conf.graceful_timeout
    worker = deployment("worker")["spec"]["template"]["spec"]
    engine_stop = inspect.signature(Engine.stop).parameters["timeout"].default
    assert worker["terminationGracePeriodSeconds"] > engine_stop + Settings().braze_timeout_seconds
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    grace = compose["services"]["worker"]["stop_grace_period"]
    assert worker["terminationGracePeriodSeconds"] == int(re.fullmatch(r"(\d+)s", grace).group(1))


def test_beat_is_one_replica_recreated():
    spec = deployment("beat")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"


def test_the_images_default_command_serves_the_admin_bind_to_the_pod_network():
    """Run without args (docker run, compose), the image's ingress is scrapeable like the manifests' one."""
    cmd = json.loads(re.search(r"^CMD (\[.*\])\s*$", (ROOT / "Dockerfile").read_text(), re.M).group(1))
    assert cmd == container("ingress")["args"]
