"""Deployment files of the scale-out modes, checked without a cluster or a Docker engine.

Kubernetes: the run and step Jobs that dagster-k8s builds for our runs from
deploy/helm/values.yaml, with dagster-k8s's own spec builders (`K8sContainerContext`,
`construct_dagster_k8s_job`), the way K8sRunLauncher and k8s_job_executor call them.
Compose: the `celery` profile. Default tier (no marker), a few seconds.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._grpc.types import ExecuteRunArgs, ExecuteStepArgs
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
)

from sync_assets.orchestration import executor
from sync_assets_tests.conftest import REPO_ROOT
from sync_assets_tests.orchestration.test_deployment_files import _compose_config

VALUES = REPO_ROOT / "deploy" / "helm" / "values.yaml"
# Keys the official chart (dagster/dagster 1.13) documents in its values.yaml, for the parts
# this file sets: the run launcher, the user code deployment and its launched runs.
CHART_LAUNCHER_KEYS = {"envConfigMaps", "envSecrets", "runK8sConfig", "jobNamespace", "image",
                       "imagePullPolicy", "loadInclusterConfig", "envVars", "volumes",
                       "volumeMounts", "labels", "resources", "securityContext"}  # fmt: skip
CHART_RUN_K8S_KEYS = {"containerConfig", "podSpecConfig", "podTemplateSpecMetadata",
                      "jobSpecConfig", "jobMetadata"}  # fmt: skip
CHART_DEPLOYMENT_KEYS = {"name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "port", "env",
                         "envConfigMaps", "envSecrets", "includeConfigInLaunchedRuns", "resources",
                         "replicaCount", "labels", "annotations", "nodeSelector", "affinity",
                         "tolerations", "podSecurityContext", "securityContext", "volumes",
                         "volumeMounts", "livenessProbe", "readinessProbe", "startupProbe",
                         "service", "schedulerName", "initContainers", "sidecarContainers",
                         "deploymentLabels", "deploymentNamespace"}  # fmt: skip
SNAKE = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
         "podTemplateSpecMetadata": "pod_template_spec_metadata",
         "jobSpecConfig": "job_spec_config", "jobMetadata": "job_metadata"}  # fmt: skip


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _names(refs: list[dict[str, str]]) -> list[str]:
    return [ref["name"] for ref in refs]


def _launcher_context(values: dict[str, Any]) -> K8sContainerContext:
    """The run launcher's container context, as the chart's instance ConfigMap configures it."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s = {SNAKE[k]: v for k, v in launcher.get("runK8sConfig", {}).items()}
    return K8sContainerContext(
        namespace="sync-assets",
        env_config_maps=_names(launcher["envConfigMaps"]),
        env_secrets=_names(launcher["envSecrets"]),
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(run_k8s),
    )


def _origin(values: dict[str, Any], job: str) -> JobPythonOrigin:
    deployment = values["dagster-user-deployments"]["deployments"][0]
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    module = deployment["dagsterApiGrpcArgs"][deployment["dagsterApiGrpcArgs"].index("-m") + 1]
    pointer = ModuleCodePointer(module, "defs", working_directory=None)
    return JobPythonOrigin(
        job, RepositoryPythonOrigin("/usr/local/bin/python", pointer, container_image=image)
    )


def _job_config(values: dict[str, Any], image: str) -> DagsterK8sJobConfig:
    return DagsterK8sJobConfig(
        job_image=image,
        dagster_home="/opt/dagster/dagster_home",
        instance_config_map="sync-assets-dagster-instance",
        postgres_password_secret=values["global"]["postgresqlSecretName"],
    )


def _container(
    values: dict[str, Any],
    origin: JobPythonOrigin,
    args: list[str],
    context: K8sContainerContext,
    component: str,
) -> Any:
    """The pod's container in the Job dagster-k8s builds (as its launcher/executor call it)."""
    spec = construct_dagster_k8s_job(
        _job_config(values, origin.repository_origin.container_image),
        args,
        f"dagster-{component.replace('_', '-')}-0000",
        user_defined_k8s_config=context.run_k8s_config,
        component=component,
    )
    container = spec.spec.template.spec.containers[0]
    assert container.image == "registry.example.internal/sync-assets:1.0.0"
    assert _env_from(container) == ({"sync-assets-env"}, {"sync-assets-secrets"})
    return container


def _env_from(container: Any) -> tuple[set[str], set[str]]:
    maps = {e.config_map_ref.name for e in container.env_from if e.config_map_ref}
    secrets = {e.secret_ref.name for e in container.env_from if e.secret_ref}
    return maps, secrets


def test_values_parse_with_the_keys_the_chart_documents() -> None:
    values = _values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert set(launcher) <= CHART_LAUNCHER_KEYS
    assert set(launcher["runK8sConfig"]) <= CHART_RUN_K8S_KEYS
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert set(deployment) <= CHART_DEPLOYMENT_KEYS
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["SYNC_EXECUTOR"] == executor.K8S


@pytest.mark.parametrize("job", ["mysql_sync_job", "ftp_logs_job"])
def test_run_pod_spec_built_by_dagster_k8s(job: str) -> None:
    values = _values()
    origin = _origin(values, job)
    args = ExecuteRunArgs(job_origin=origin, run_id="0" * 36, instance_ref=None).get_command_args()
    container = _container(values, origin, args, _launcher_context(values), "run_worker")
    # the code location's Python runs `dagster api execute_run <serialized run args>`
    assert container.args[:5] == ["/usr/local/bin/python", "-m", "dagster", "api", "execute_run"]
    assert job in container.args[5] and "sync_assets.definitions" in container.args[5]
    resources = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    wanted = resources["containerConfig"]["resources"]
    assert container.resources.requests == wanted["requests"]
    assert container.resources.limits == wanted["limits"]
    assert {e.name for e in container.env} >= {"DAGSTER_HOME", "DAGSTER_PG_PASSWORD"}


def test_step_pod_spec_of_the_k8s_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(executor.EXECUTOR_ENV, executor.K8S)
    assert executor.build_executor().name == "sync_assets_k8s"
    values = _values()
    origin = _origin(values, "mysql_sync_job")
    step_args = ExecuteStepArgs(
        job_origin=origin,
        run_id="0" * 36,
        step_keys_to_execute=["legacy__actor"],
        instance_ref=None,
    ).get_command_args(skip_serialized_namedtuple=True)
    # k8s_job_executor: the run's context (launcher) merged with the executor's step config.
    context = _launcher_context(values).merge(
        K8sContainerContext(
            run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(executor.K8S_STEP_CONFIG)
        )
    )
    container = _container(values, origin, step_args, context, "step_worker")
    assert container.args[:5] == ["/usr/local/bin/python", "-m", "dagster", "api", "execute_step"]
    wanted = executor.K8S_STEP_CONFIG["container_config"]["resources"]
    assert container.resources.requests == wanted["requests"]
    assert container.resources.limits == wanted["limits"]


def test_compose_celery_profile_adds_broker_and_workers() -> None:
    services = _compose_config("--profile", "celery")["services"]
    worker = services["celery-worker"]
    assert worker["command"][:2] == ["sync-assets", "worker"]
    assert worker["image"] == services["code-server"]["image"]  # the same image
    assert worker["environment"]["SYNC_EXECUTOR"] == "celery"
    broker = worker["environment"]["CELERY_BROKER_URL"]
    assert broker == services["code-server"]["environment"]["CELERY_BROKER_URL"]
    assert "celery-broker" in broker and "celery-broker" in services
    assert worker["deploy"]["replicas"] >= 2
    assert "celery-worker" not in _compose_config()["services"]  # profile only
