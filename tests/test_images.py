"""Static checks of the container images (no docker engine needed).

The Dockerfiles are parsed by hand (instructions, continuation lines, stages, ARG defaults);
the install steps themselves are exercised by `make image-install-check`.
"""

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
OTELPOWER_DOCKERFILE = ROOT / "Dockerfile"
COLLECTOR_DOCKERFILE = ROOT / "collector-config" / "Dockerfile"
INSTALL_SCRIPT = ROOT / "tools" / "image-install.sh"
DIGEST = r"@sha256:[0-9a-f]{64}"
# Anything that compiles or fetches packages has no business in a final stage.
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|dnf|yum|pip3?|uv|gcc|g\+\+|cc|make|build-essential|"
    r"python3?-dev|go)\b"
)


@dataclass
class Stage:
    image: str  # FROM image with ARG defaults substituted
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]

    def last(self, instruction: str) -> str:
        found = self.args(instruction)
        assert found, f"stage {self.name or self.image}: no {instruction}"
        return found[-1]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for line in self.args("ENV"):
            for item in shlex.split(line):
                key, _, value = item.partition("=")
                env[key] = value
        return env


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages of a Dockerfile: (INSTRUCTION, arguments) with continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path}: dangling line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), " ".join(rest.split())
        if instruction == "FROM":
            words = [w for w in rest.split() if not w.startswith("--platform=")]
            image = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0]
            )
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        elif not stages:
            assert instruction == "ARG", f"{path}: {instruction} before the first FROM"
            key, _, value = rest.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append((instruction, rest))
    return stages


@pytest.fixture(scope="module")
def otelpower_stages() -> list[Stage]:
    return parse_dockerfile(OTELPOWER_DOCKERFILE)


@pytest.fixture(scope="module")
def collector_stages() -> list[Stage]:
    return parse_dockerfile(COLLECTOR_DOCKERFILE)


# --- otelpower image ----------------------------------------------------------------------


def test_otelpower_is_multi_stage_on_pinned_python_312(otelpower_stages):
    assert len(otelpower_stages) >= 2
    for stage in otelpower_stages:
        assert re.fullmatch(r"python:3\.12\.\d+-slim-bookworm" + DIGEST, stage.image), stage.image
    # builder and final stage use the same interpreter (the venv is copied across)
    assert len({stage.image for stage in otelpower_stages}) == 1


def test_otelpower_final_stage_runs_as_numeric_non_root_user(otelpower_stages):
    user = otelpower_stages[-1].last("USER")
    assert re.fullmatch(r"\d+:\d+", user), f"USER {user!r} is not numeric uid:gid"
    uid, gid = (int(n) for n in user.split(":"))
    assert (uid, gid) == (10001, 10001)
    # nothing after USER switches back to root
    final = otelpower_stages[-1].instructions
    after_user = final[max(i for i, (ins, _) in enumerate(final) if ins == "USER") :]
    assert not [a for ins, a in after_user if ins == "RUN"]


def test_otelpower_entrypoint_and_defaults(otelpower_stages):
    final = otelpower_stages[-1]
    assert json.loads(final.last("ENTRYPOINT")) == ["otelpower"]
    assert json.loads(final.last("CMD")) == ["--help"]
    assert "9464" in final.last("EXPOSE").split()
    env = final.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/otelpower/bin:")
    healthcheck = final.last("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert "apt" not in healthcheck and "curl" not in healthcheck


def test_otelpower_final_stage_has_no_build_tools(otelpower_stages):
    final = otelpower_stages[-1]
    for run in final.args("RUN"):
        assert not BUILD_TOOLS.search(run), f"build tooling in the final stage: RUN {run}"
        assert not re.search(r"\b(gcc|build-essential|libc6-dev)\b", run)
    copies = final.args("COPY")
    from_builder = [c for c in copies if c.startswith("--from=")]
    assert from_builder == ["--from=builder /opt/otelpower /opt/otelpower"], from_builder
    # from the context only the example configuration, no sources or lock files
    for copy in copies:
        if not copy.startswith("--from="):
            assert copy.split()[0] == "config.example.yaml", copy


def test_otelpower_builder_runs_the_install_script(otelpower_stages):
    builder = next(s for s in otelpower_stages if s.name == "builder")
    runs = builder.args("RUN")
    # the only mount: an optional CA bundle for pip (a build secret, in no layer)
    assert runs == ["--mount=type=secret,id=ca tools/image-install.sh /opt/otelpower"], runs
    assert "PIP_CERT" in builder.args("ARG")
    copied = " ".join(builder.args("COPY")).split()
    for needed in (
        "tools/image-install.sh",
        "tools/image-build-requirements.txt",
        "requirements.lock",
        "pyproject.toml",
        "otelpower/",
    ):
        assert needed in copied, f"builder stage does not COPY {needed}"


def test_install_script_installs_locked_hashes_then_wheel_without_deps():
    script = INSTALL_SCRIPT.read_text()
    steps = re.sub(r"\\\n\s*", " ", script)
    pip_installs = [line for line in steps.splitlines() if "pip install" in line]
    locked = [line for line in pip_installs if "requirements.lock" in line]
    assert len(locked) == 1
    assert "--require-hashes" in locked[0] and "--no-cache-dir" in locked[0]
    wheel = [line for line in pip_installs if ".whl" in line]
    assert len(wheel) == 1 and "--no-deps" in wheel[0]
    assert pip_installs.index(locked[0]) < pip_installs.index(wheel[0])
    assert INSTALL_SCRIPT.stat().st_mode & 0o111, "tools/image-install.sh is not executable"


def test_requirements_lock_is_runtime_only_with_hashes():
    text = (ROOT / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    names = set()
    for entry in entries:
        name = re.match(r"[A-Za-z0-9._-]+", entry).group(0).lower()
        assert "==" in entry.split("\\")[0], f"{name}: not pinned"
        assert "--hash=sha256:" in entry, f"{name}: no hash"
        names.add(name)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for dep in pyproject["project"]["dependencies"]:
        assert re.match(r"[A-Za-z0-9._-]+", dep).group(0).lower() in names, dep
    for dev in pyproject["dependency-groups"]["dev"]:
        assert re.match(r"[A-Za-z0-9._-]+", dev).group(0).lower() not in names, dev
    assert "otelpower" not in names  # the project comes as its own wheel, --no-deps


def test_dockerignore_keeps_local_state_out():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (".venv", ".tools", ".run", "build", "**/node_modules", ".git"):
        assert entry in ignored, entry


# --- collector image ----------------------------------------------------------------------


def test_collector_images_pinned(collector_stages):
    builder, final = collector_stages[0], collector_stages[-1]
    assert re.fullmatch(r"golang:1\.26\.\d+-bookworm" + DIGEST, builder.image), builder.image
    assert re.fullmatch(r"gcr\.io/distroless/static-debian12:nonroot" + DIGEST, final.image), (
        final.image
    )


def test_collector_builder_matches_the_local_build(collector_stages):
    builder = collector_stages[0]
    pipeline_mk = (ROOT / "mk" / "pipeline.mk").read_text()
    ocb_version = re.search(r"^OCB_VERSION := (\S+)$", pipeline_mk, re.M).group(1)
    assert f"OCB_VERSION={ocb_version}" in builder.args("ARG")
    assert builder.env()["CGO_ENABLED"] == "0"
    runs = " ".join(builder.args("RUN"))
    assert "go.opentelemetry.io/collector/cmd/builder@v${OCB_VERSION}" in runs
    assert "builder --config collector-config/builder-config.yaml" in runs
    manifest = yaml.safe_load((ROOT / "collector-config" / "builder-config.yaml").read_text())
    output = manifest["dist"]["output_path"]
    assert f"{output}/{manifest['dist']['name']}" in runs


def test_collector_final_stage(collector_stages):
    final = collector_stages[-1]
    assert final.last("USER") == "65532:65532"
    # otelcol-guard (collector-config/guard) runs the collector and keeps its WAL recoverable
    assert json.loads(final.last("ENTRYPOINT")) == ["/otelcol-guard", "/otelcol-otelpower"]
    assert json.loads(final.last("CMD")) == ["--config", "/etc/otelcol/config.yaml"]
    assert set(final.last("EXPOSE").split()) == {"4317", "4318", "8889", "13133", "13134"}
    assert "collector-config/config.yaml /etc/otelcol/config.yaml" in final.args("COPY")
    assert not final.args("RUN")  # distroless: no shell


# --- workflow -----------------------------------------------------------------------------


def test_workflow_builds_both_images_multi_arch():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yaml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"push", "pull_request"}
    assert triggers["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert workflow["permissions"] == {"contents": "read"}
    images = workflow["jobs"]["images"]
    assert images["needs"] == "test"
    assert workflow["jobs"]["test"] == {"uses": "./.github/workflows/test.yaml"}
    dockerfiles = {entry["dockerfile"] for entry in images["strategy"]["matrix"]["include"]}
    assert dockerfiles == {"Dockerfile", "collector-config/Dockerfile"}
    # the step that pushes (before it, an amd64 build of otelpower is loaded and run)
    build = next(
        s
        for s in images["steps"]
        if s.get("uses", "").startswith("docker/build-push") and "push" in s["with"]
    )
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] == "${{ github.event_name != 'pull_request' }}"
