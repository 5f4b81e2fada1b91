"""Deployment files: Kubernetes manifests against the Kubernetes schemas (kubernetes-validate),
the compose file against the compose specification's schema (as vendored by check-jsonschema),
and the Dockerfile's shape (multi-stage, non-root, health check)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30.0"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_kubernetes_manifests_are_valid_for_kubernetes_1_30() -> None:
    kinds: dict[str, int] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in _docs(path):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    assert kinds["Deployment"] == 3 and kinds["HorizontalPodAutoscaler"] == 1 and kinds["PodDisruptionBudget"] == 1
    assert kinds["Service"] >= 2 and kinds["ConfigMap"] == 1 and kinds["Secret"] == 1


def test_kubernetes_manifests_hang_together() -> None:
    docs = _docs(DEPLOY / "k8s" / "chainsentry.yaml")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for d in deployments.values():
        pod = d["spec"]["template"]
        assert d["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for c in pod["spec"]["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["readinessProbe"]
            config = yaml.safe_load(next(x for x in docs if x["kind"] == "ConfigMap")["data"]["config.yaml"])
            from chainsentry.config import Settings
            Settings.model_validate(config)  # the ConfigMap is a valid chainsentry config
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    partitions = yaml.safe_load(next(x for x in docs if x["kind"] == "ConfigMap")["data"]["config.yaml"])[
        "transport"]["partitions"]
    assert hpa["spec"]["maxReplicas"] <= partitions, "more detect workers than partitions would idle"
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == deployments["chainsentry-detect"]["spec"]["selector"][
        "matchLabels"]
    secret_refs = {e["valueFrom"]["secretKeyRef"]["name"]
                   for d in deployments.values() for c in d["spec"]["template"]["spec"]["containers"]
                   for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    example = _docs(DEPLOY / "k8s" / "secret.example.yaml")[0]
    assert secret_refs == {example["metadata"]["name"]}


def test_compose_file_follows_the_compose_specification() -> None:
    import check_jsonschema.builtin_schemas as builtin

    schema_path = Path(builtin.__file__).parent / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text())
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    jsonschema.validate(doc, schema)
    services = doc["services"]
    assert {"kafka", "prometheus", "grafana", "ingest", "detect", "alert", "anvil"} <= set(services)
    assert services["anvil"]["profiles"] == ["devnet"]
    for mount in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("."):
            assert (DEPLOY / source).exists(), f"compose mounts {source}, which does not exist"


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith("#")]
    assert sum(x.startswith("FROM ") for x in lines) >= 2 and "COPY --from=build" in text
    user = [x for x in lines if x.startswith("USER ")]
    assert user and not user[-1].split()[1].startswith(("root", "0"))
    assert any(x.startswith("HEALTHCHECK ") for x in lines) and 'ENTRYPOINT ["chainsentry"]' in text
    copied = {w for x in lines if x.startswith("COPY ") and "--from" not in x for w in x.split()[1:-1]}
    assert {"pyproject.toml", "setup.py", "constraints.txt", "README.md"} <= copied  # what the build reads
