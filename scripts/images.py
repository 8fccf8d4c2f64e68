"""Builds, starts and saves harmeval's container images with podman, with no container runtime.

    python scripts/images.py build [IMAGE ...]   # base image first where none can be pulled
    python scripts/images.py start [IMAGE ...]   # each image's entrypoint from its own files
    python scripts/images.py save [IMAGE ...]    # OCI archives under <data dir>/images

`make images` builds and saves the five CPU images (the four services and the annotation app),
`make images-test` then checks and starts them (tests/deploy/test_images.py); `make
images-gpu` builds, starts (its backends imported: no GPU needed) and saves the vLLM one.
Builds run `podman build --isolation=chroot`; the base is the public python (or CUDA) image
when it can be pulled, else a Debian bookworm root filesystem made by mmdebstrap and imported
into podman (Debian's python3 is 3.11; made once, `--rebuild-base` makes it again with the
day's security updates). pip's cache is a build cache mount (`id=harmeval-pip`), so a rebuild
compiles and downloads no wheel again.

"Started" means what a pod does, without a container runtime (podman run cannot start
containers on every machine): the image's root filesystem mounted read-only, /tmp a tmpfs, the
data dir a fresh folder, the image's user, environment and entrypoint, as PID 1 of a new PID
namespace under chroot, on the host's network; then health must say SERVING (the annotation
app: GET /healthz 200, and its pages and static files served), /metrics must answer, the
generator must answer a prompt, and SIGTERM must stop it with exit status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "deploy" / "docker"
VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# Fully qualified, as Kubernetes normalises the manifests' `harmeval/<name>`: an archive
# loaded into a cluster then carries the very name the pods ask for.
REPOSITORY = "docker.io/harmeval"
# The base made from Debian packages where the public image cannot be pulled.
DEBIAN_BASE = "localhost/harmeval/debian-python:3.11-bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# What python:3.11-slim-bookworm gives the Dockerfiles: python3 with its venv module (on
# minbase, Debian's slim set), TLS roots; without documentation and translations, as
# debian:bookworm-slim leaves them out (the dpkg filters stay for the images' own apt-get).
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DPKG_FILTERS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)
# As the Debian images on registries do (their /etc/apt/apt.conf.d/docker-clean): apt keeps no
# downloaded packages in layers.
APT_CLEAN = (
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
    'APT::Keep-Downloaded-Packages "false";\n'
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n'
)
BASE_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
PULL_TIMEOUT_S = 300


@dataclass(frozen=True)
class Image:
    name: str
    service: str
    # The service's own port: gRPC, or HTTP for the annotation app (`protocol`).
    port: int
    metrics_port: int
    # Uncompressed size (`podman image inspect` .Size) the image must stay under.
    budget_mb: int
    # The Dockerfile's build argument naming its base image.
    base_arg: str = "PYTHON_IMAGE"
    gpu: bool = False
    # "grpc": the server skeleton (grpc.health.v1 on a health-only port too); "http": the
    # annotation app (GET /healthz on its port, for the probes' httpGet).
    protocol: str = "grpc"

    @property
    def dockerfile(self) -> Path:
        return DOCKER / f"{self.name}.Dockerfile"

    @property
    def module(self) -> str:
        return f"harmeval_{self.service}"

    @property
    def ref(self) -> str:
        return f"{REPOSITORY}/{self.name}:{VERSION}"

    @property
    def build_stage_ref(self) -> str:
        """The build stage, kept as the layer cache of the next build."""
        return f"localhost/harmeval-build/{self.name}:{VERSION}"

    @property
    def archive(self) -> str:
        return f"{self.name}-{VERSION}.oci.tar"


IMAGES = {
    i.name: i
    for i in (
        Image("generator", "generator", 50051, 9451, budget_mb=900),
        Image(
            "generator-gpu",
            "generator",
            50051,
            9451,
            budget_mb=12000,
            base_arg="CUDA_IMAGE",
            gpu=True,
        ),
        Image("judge", "judge", 50052, 9452, budget_mb=800),
        Image("metrics", "metrics", 50053, 9453, budget_mb=400),
        Image("runner", "runner", 50054, 9454, budget_mb=350),
        Image("annotator", "annotator", 8470, 9455, budget_mb=300, protocol="http"),
    )
}
CPU_IMAGES = tuple(name for name, image in IMAGES.items() if not image.gpu)


def say(message: str) -> None:
    print(message, flush=True)


def podman(*args: str, check: bool = True, timeout: float | None = None) -> str:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise SystemExit(f"podman {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


def image_exists(ref: str) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], check=False).returncode == 0


def image_id(ref: str) -> str:
    return str(inspect(ref)["Id"]) if image_exists(ref) else ""


def inspect(ref: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(podman("image", "inspect", ref))
    return found[0]


# --- base images -------------------------------------------------------------------------


def dockerfile_default(image: Image) -> str:
    """The base image the Dockerfile names by default, fully qualified for podman."""
    match = re.search(rf"^ARG {image.base_arg}=(\S+)$", image.dockerfile.read_text(), re.M)
    if match is None:
        raise SystemExit(f"{image.dockerfile}: no `ARG {image.base_arg}=` default")
    ref = match[1]
    first = ref.split("/", 1)[0]
    if "/" not in ref:
        return f"docker.io/library/{ref}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{ref}"
    return ref


def debian_base(rebuild: bool = False) -> str:
    """Debian bookworm's python3 3.11 as a local image, made by mmdebstrap (about a minute)."""
    if image_exists(DEBIAN_BASE) and not rebuild:
        return DEBIAN_BASE
    for tool in ("mmdebstrap", "podman"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: `make image-tools` installs it (as root)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="harmeval-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                "--aptopt=Acquire::Languages none",
                *(f"--dpkgopt={f}" for f in DPKG_FILTERS),
                "--customize-hook=printf '%s' "
                + shlex.quote(APT_CLEAN)
                + ' > "$1/etc/apt/apt.conf.d/docker-clean"',
                # With that config `apt-get clean` (mmdebstrap's cleanup) no longer knows
                # apt's binary caches: they go here.
                '--customize-hook=rm -f "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb',
                "--format=tar",
                DEBIAN_SUITE,
                str(rootfs),
                *DEBIAN_MIRRORS,
            ],
            check=True,
        )
        changes = [f"--change=ENV {e}" for e in BASE_ENV] + ['--change=CMD ["python3"]']
        podman(
            "import", *changes, "--message", "mmdebstrap " + DEBIAN_SUITE, str(rootfs), DEBIAN_BASE
        )
    say(f"base: {DEBIAN_BASE} made with mmdebstrap in {time.monotonic() - started:.0f}s")
    return DEBIAN_BASE


def base_for(image: Image, mode: str, rebuild: bool = False) -> str:
    """`registry`: the Dockerfile's own base, pulled; `debian`: the local Debian base;
    `auto`: the former when it is here or can be pulled, else the latter."""
    if mode == "debian":
        return debian_base(rebuild)
    ref = dockerfile_default(image)
    if image_exists(ref):
        return ref
    pulled = subprocess.run(
        ["podman", "pull", "--quiet", ref],
        capture_output=True,
        text=True,
        timeout=PULL_TIMEOUT_S,
        check=False,
    )
    if pulled.returncode == 0:
        return ref
    if mode == "registry":
        raise SystemExit(f"cannot pull {ref}:\n{pulled.stderr.strip()}")
    say(
        f"base: {ref} cannot be pulled ({pulled.stderr.strip().splitlines()[-1]}); "
        f"using {DEBIAN_BASE}"
    )
    return debian_base(rebuild)


# --- build ---------------------------------------------------------------------------------


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def source_url() -> str:
    """org.opencontainers.image.source: IMAGE_SOURCE, else the git remote `origin`, else the
    local checkout (a clone without a remote has no public address to name)."""
    url = os.environ.get("IMAGE_SOURCE") or git("remote", "get-url", "origin")
    if url.startswith("git@"):
        url = "https://" + url.removeprefix("git@").replace(":", "/", 1)
    return url.removesuffix(".git") if url else ROOT.as_uri()


def revision() -> str:
    """The commit, marked `-dirty` when the working tree differs from it."""
    return git("describe", "--always", "--dirty", "--abbrev=40") or "unknown"


def build_ca() -> Path | None:
    """The CA bundle pip on this machine is told to trust (IMAGE_BUILD_CA, else PIP_CERT),
    e.g. a TLS-intercepting proxy's: the builds' pip trusts it too."""
    ca = os.environ.get("IMAGE_BUILD_CA") or os.environ.get("PIP_CERT")
    return Path(ca) if ca and Path(ca).is_file() else None


def ca_volumes(ca: Path, folder: Path) -> list[str]:
    """Volumes giving RUN steps that CA bundle and a pip.conf naming it (pip in a venv reads
    /etc/pip.conf too); volumes are never committed, but their mount points are."""
    conf = folder / "pip.conf"
    conf.write_text("[global]\ncert = /etc/ssl/certs/harmeval-build-ca.pem\n")
    return [
        f"--volume={ca.resolve()}:/etc/ssl/certs/harmeval-build-ca.pem:ro",
        f"--volume={conf}:/etc/pip.conf:ro",
    ]


def snapshot(image: Image, folder: Path) -> Path:
    """The build context as one consistent copy: the paths the image's .dockerignore
    allow-list names (`!path`), without caches. The tree may change during a build (several
    people edit it); both passes of a build then see the same files."""
    ignore = Path(f"{image.dockerfile}.dockerignore").read_text().splitlines()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    context = folder / "context"
    # The Dockerfile and its ignore file too, outside the context.
    for path in (image.dockerfile, Path(f"{image.dockerfile}.dockerignore")):
        shutil.copy2(path, folder / path.name)
    for line in ignore:
        if not line.startswith("!"):
            continue
        source = ROOT / line[1:].rstrip("/")
        target = context / line[1:].rstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=skip)
        else:
            shutil.copy2(source, target)
    return context


def build(image: Image, base: str, no_cache: bool = False) -> float:
    """podman build, chroot isolation. With a CA bundle to trust, the build stage is built
    first with it mounted, then the image reuses that stage from the layer cache and builds
    its final stage without the mounts (so not even their empty mount points ship)."""
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="harmeval-build-"))
    context = str(snapshot(image, tmp))
    dockerfile = tmp / image.dockerfile.name
    command = [
        "podman",
        "build",
        "--isolation=chroot",
        "--layers",
        "--file",
        str(dockerfile),
        "--ignorefile",
        f"{dockerfile}.dockerignore",
        "--build-arg",
        f"{image.base_arg}={base}",
        "--build-arg",
        f"SOURCE={source_url()}",
        "--build-arg",
        f"REVISION={revision()}",
        "--build-arg",
        f"VERSION={VERSION}",
    ]
    say(f"build: {image.ref} on {base}")
    ca = build_ca()
    previous = {ref: image_id(ref) for ref in (image.ref, image.build_stage_ref)}
    try:
        if ca is not None:
            subprocess.run(
                [
                    *command,
                    *ca_volumes(ca, tmp),
                    *(["--no-cache"] if no_cache else []),
                    "--target=build",
                    # Named: the previous build's stage is left dangling (podman image prune).
                    "--tag",
                    image.build_stage_ref,
                    context,
                ],
                check=True,
            )
            no_cache = False
        subprocess.run(
            [*command, *(["--no-cache"] if no_cache else []), "--tag", image.ref, context],
            check=True,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # What the tags named before, now untagged, goes (not what other images still use).
    for ref, old in previous.items():
        if old and old != image_id(ref):
            podman("rmi", old, check=False)
    return time.monotonic() - started


def size_mb(ref: str) -> float:
    return float(inspect(ref)["Size"]) / 1e6


# --- start ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    """A PostgreSQL listening on 127.0.0.1 (the pgserver package's binaries): images reach
    it over the host's network, as pods reach theirs over TCP."""

    url: str
    stop: Any

    def database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def tcp_postgres() -> Iterator[Postgres]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = Path(tempfile.mkdtemp(prefix="harmeval-img-pg-", dir="/tmp"))
    # get_server initialises the cluster (as a user of its own when run as root) and starts
    # it on a unix socket only; it is then restarted listening on a loopback port.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    user = server.system_user
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    port = free_port()
    pgserver.pg_ctl(
        ["-w", "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "-l", str(pgdata / "log"), "start"],
        pgdata=pgdata,
        user=user,
        timeout=60,
    )

    def stop() -> None:
        with contextlib.suppress(Exception):
            pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        shutil.rmtree(pgdata, ignore_errors=True)

    try:
        yield Postgres(f"postgresql://postgres@127.0.0.1:{port}/postgres", stop)
    finally:
        stop()


# Runs as root in a new mount and PID namespace (its mounts vanish with it): a tmpfs /tmp and
# the data dir as in the pod, /dev and /proc, then the command as the image's user with only
# the given environment. The command is PID 1 of its namespace, as an entrypoint in a pod is.
CHROOT = (
    'set -e; R="$1"; D="$2"; U="$3"; shift 3; '
    'mount -t tmpfs -o mode=1777,size=256m tmpfs "$R/tmp"; '
    'mount --rbind /dev "$R/dev"; '
    'mount --bind "$D" "$R/var/lib/harmeval"; '
    'exec chroot --userspec="$U" --groups="${U#*:}" "$R" /usr/bin/env -i "$@"'
)
DATA_DIR_IN_IMAGE = "/var/lib/harmeval"


@dataclass(frozen=True)
class ImageConfig:
    env: dict[str, str]
    entrypoint: list[str]
    user: str
    exposed: set[int]
    labels: dict[str, str]


def image_config(ref: str) -> ImageConfig:
    config = inspect(ref)["Config"]
    return ImageConfig(
        env=dict(e.split("=", 1) for e in config.get("Env") or []),
        entrypoint=[*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])],
        user=str(config.get("User") or "0:0"),
        exposed={int(p.split("/")[0]) for p in config.get("ExposedPorts") or {}},
        labels=dict(config.get("Labels") or {}),
    )


@contextlib.contextmanager
def mounted(ref: str) -> Iterator[Path]:
    """The image's root filesystem, read-only."""
    path = Path(podman("image", "mount", ref).strip())
    try:
        yield path
    finally:
        podman("image", "unmount", ref, check=False)


@dataclass
class Launched:
    """A command running from an image's files (see the module's doc)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    data: Path
    # time.monotonic() when the command was started.
    started: float

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def pid1(self) -> int:
        """The command's pid on this machine: the one child of `unshare --fork`."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(children) != 1:
            raise RuntimeError(f"{self.name}: unshare has children {children}")
        return int(children[0])

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited ({self.process.returncode}):\n{self.log_tail()}"
            )

    def identity(self) -> str:
        """`uid:gid pid-in-namespace` of the command, from /proc (e.g. `10001:10001 pid 1`)."""
        status = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{self.pid1()}/status").read_text().splitlines()
        )
        uid, gid = status["Uid"].split()[0], status["Gid"].split()[0]
        return f"{uid}:{gid} pid {status['NSpid'].split()[-1]}"

    def terminate(self, timeout_s: float = 60) -> tuple[int, float]:
        """SIGTERM to the command, as the kubelet sends it: its exit status and how long it
        took to exit."""
        started = time.monotonic()
        os.kill(self.pid1(), signal.SIGTERM)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"{self.name}: still running {timeout_s:.0f}s after SIGTERM"
            ) from None
        return code, time.monotonic() - started


@contextlib.contextmanager
def launch(
    image: Image,
    workdir: Path,
    env: dict[str, str],
    command: Sequence[str] | None = None,
    data_files: dict[str, str] | None = None,
) -> Iterator[Launched]:
    """Runs the image's entrypoint (or `command`) with the image's environment plus `env`, as
    the image's user, from its own files; a fresh data dir, holding `data_files` (path in it:
    text), is mounted at HARMEVAL_DATA_DIR. Killed (with everything it started) if still
    running on leaving."""
    config = image_config(image.ref)
    uid, _, gid = config.user.partition(":")
    user = f"{uid}:{gid or uid}"
    folder = Path(tempfile.mkdtemp(prefix=f"{image.name}-", dir=workdir))
    data = folder / "data"
    data.mkdir()
    for name, text in (data_files or {}).items():
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text(text)
    for path in (data, *data.rglob("*")):
        os.chown(path, int(uid), int(gid or uid))
    merged = {**config.env, **env}
    with mounted(image.ref) as root, (folder / "output.log").open("wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            [
                "unshare", "--mount", "--pid", "--fork", "--kill-child",
                f"--mount-proc={root}/proc", "sh", "-c", CHROOT, "sh", str(root), str(data),
                user, *(f"{k}={v}" for k, v in merged.items()),
                *(command or config.entrypoint),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield Launched(image.name, process, folder / "output.log", data, started)
        finally:
            if process.poll() is None:
                process.kill()  # --kill-child: the namespace's PID 1 goes too
                process.wait()


def health(address: str, service: str = "") -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


# What the annotation app's image must serve: its health, the sign-in page (a template) and
# the static files (package data).
HTTP_PAGES = ("/healthz", "/livez", "/login", "/static/style.css", "/static/annotate.js")


def grpc_service_name(service: str) -> str:
    return f"harmeval.{service}.v1.{service.capitalize()}Service"


@dataclass
class Service:
    """A service started from its image, on loopback ports of this machine."""

    image: Image
    launched: Launched
    ports: dict[str, int]
    token: str
    seconds_to_serving: float = 0.0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports[self.image.protocol]}"

    @property
    def health_address(self) -> str:
        return f"127.0.0.1:{self.ports['health']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['metrics']}/metrics"


def service_env(image: Image, database_url: str, ports: dict[str, int]) -> dict[str, str]:
    """What the manifests add to the image's environment, on loopback ports of this machine
    (plaintext is allowed there; the image's own ports may be taken by a local stack)."""
    prefix = f"HARMEVAL_{image.service.upper()}"
    env = {
        "HARMEVAL_DATABASE_URL": database_url,
        "HARMEVAL_AUTH_TOKENS_FILE": f"{DATA_DIR_IN_IMAGE}/auth/tokens.json",
        "HARMEVAL_GRACE_SECONDS": "5",
        f"{prefix}_ADDRESS": f"127.0.0.1:{ports[image.protocol]}",
        f"{prefix}_PROMETHEUS_PORT": str(ports["metrics"]),
    }
    if image.protocol == "grpc":
        env["HARMEVAL_HEALTH_ADDRESS"] = f"127.0.0.1:{ports['health']}"
    if image.service == "generator":
        env["HARMEVAL_GENERATOR_N_THREADS"] = "2"
    if image.service == "annotator":
        # Its own token for the metrics service, a file as the pod's Secret; nothing listens
        # on that port: the app starts without it and calls it only for people's pages.
        env["HARMEVAL_TOKEN_FILE"] = f"{DATA_DIR_IN_IMAGE}/auth/service.token"
        env["HARMEVAL_ANNOTATOR_METRICS_TARGET"] = f"127.0.0.1:{ports['metrics_target']}"
    return env


@contextlib.contextmanager
def service(
    image: Image, database_url: str, workdir: Path, timeout_s: float = 300
) -> Iterator[Service]:
    """The service started from its image, once its health says SERVING (the annotation app:
    once GET /healthz answers 200, which needs its database)."""
    from harmeval.tokens import create_token

    if image.protocol == "grpc":
        ports = {"grpc": free_port(), "metrics": free_port(), "health": free_port()}
    else:
        ports = {"http": free_port(), "metrics": free_port(), "metrics_target": free_port()}
    env = service_env(image, database_url, ports)
    # The token file, as the Secret mounted in the pod.
    with tempfile.TemporaryDirectory() as tmp:
        token = create_token(Path(tmp) / "tokens.json", "operator", f"image-{image.name}")[0]
        tokens = (Path(tmp) / "tokens.json").read_text()
    files = {"auth/tokens.json": tokens, "auth/service.token": token}
    with launch(image, workdir, env, data_files=files) as launched:
        s = Service(image, launched, ports, token)

        def ready() -> bool:
            if image.protocol == "grpc":
                return health(s.address) == "SERVING"
            return http_get(f"http://{s.address}/healthz")[0] == 200

        while not ready():
            launched.alive()
            if time.monotonic() - launched.started > timeout_s:
                raise RuntimeError(f"{image.name}: not SERVING after {timeout_s:.0f}s")
            time.sleep(0.1)
        s.seconds_to_serving = time.monotonic() - launched.started
        yield s


def http_get(url: str) -> tuple[int, bytes]:
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def metric_families(url: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return {f.name for f in text_string_to_metric_families(text)}


def generate_one(s: Service) -> Any:
    """One answer from the model baked into the image, through the service's own API."""
    import grpc

    from harmeval.common.v1 import common_pb2
    from harmeval.generator.v1 import generator_pb2, generator_pb2_grpc

    with grpc.insecure_channel(s.address) as channel:
        reply = generator_pb2_grpc.GeneratorServiceStub(channel).Generate(
            generator_pb2.GenerateRequest(
                model="gemma3-270m",
                prompts=[common_pb2.Prompt(text="Name one colour of the sky.")],
                params=common_pb2.GenerationParams(temperature=0.0, max_tokens=16, seed=1),
            ),
            metadata=[("authorization", f"Bearer {s.token}")],
            timeout=120,
        )
    [generation] = reply.generations
    return generation


def check_service(image: Image, database_url: str, workdir: Path) -> dict[str, str]:
    """Starts one service image and checks what the module's doc says; what was measured."""
    with service(image, database_url, workdir) as s:
        found = {"serving_s": f"{s.seconds_to_serving:.1f}"}
        config = image_config(image.ref)
        found["runs_as"] = s.launched.identity()
        if found["runs_as"] != f"{config.user} pid 1":
            raise RuntimeError(f"{image.name}: runs as {found['runs_as']}, not {config.user}")
        if image.protocol == "grpc":
            # What the kubelet's probes ask, on the health-only port.
            for asked in ("", grpc_service_name(image.service)):
                status = health(s.health_address, asked)
                if status != "SERVING":
                    raise RuntimeError(f"{image.name}: health port says {status} for {asked!r}")
            own_metric = f"harmeval_{image.service}_requests"
        else:
            # The pages and the script come from the package's data files in the image.
            for path in HTTP_PAGES:
                code, _ = http_get(f"http://{s.address}{path}")
                if code != 200:
                    raise RuntimeError(f"{image.name}: GET {path} answers {code}")
            found["pages"] = f"{len(HTTP_PAGES)} x 200"
            own_metric = "harmeval_annotator_outcomes"
        families = metric_families(s.metrics_url)
        if own_metric not in families:
            raise RuntimeError(f"{image.name}: /metrics lacks {own_metric}: {sorted(families)}")
        found["metrics"] = f"{len(families)} families"
        if image.service == "generator":
            t = time.monotonic()
            generation = generate_one(s)
            if generation.completion_tokens < 1:
                raise RuntimeError(f"{image.name}: an empty answer: {generation}")
            found["generate_s"] = f"{time.monotonic() - t:.1f}"
            found["answer"] = repr(generation.text.strip()[:30])
        code, seconds = s.launched.terminate()
        stopped = "service stopped" if image.protocol == "grpc" else "Application shutdown complete"
        if code != 0 or stopped not in s.launched.log_text():
            raise RuntimeError(
                f"{image.name}: exit status {code} after SIGTERM:\n{s.launched.log_tail()}"
            )
        found["sigterm"] = f"exit 0 in {seconds:.1f}s"
    return found


# The GPU image's backends import without a GPU: vLLM (torch, its CUDA libraries), llama.cpp.
GPU_IMPORTS = (
    "import harmeval_generator.__main__, harmeval_generator.backends.vllm, "
    "harmeval_generator.backends.llamacpp, vllm, torch, llama_cpp; "
    "print('vllm', vllm.__version__, 'torch', torch.__version__, "
    "'cuda', torch.version.cuda, 'llama_cpp', llama_cpp.__version__)"
)


def check_imports(image: Image, workdir: Path, timeout_s: float = 600) -> dict[str, str]:
    """The GPU image's entrypoint module and its engines import, as its user, under chroot."""
    started = time.monotonic()
    with launch(image, workdir, {}, ["python", "-c", GPU_IMPORTS]) as launched:
        code = launched.process.wait(timeout_s)
        if code != 0:
            raise RuntimeError(f"{image.name}: imports failed:\n{launched.log_tail()}")
        return {
            "imports": launched.log_text().strip().splitlines()[-1],
            "import_s": f"{time.monotonic() - started:.1f}",
        }


# --- commands ------------------------------------------------------------------------------


def data_dir() -> Path:
    return Path(os.environ.get("HARMEVAL_DATA_DIR", ROOT / ".harmeval")).resolve()


def selected(names: Sequence[str]) -> list[Image]:
    unknown = [n for n in names if n not in IMAGES]
    if unknown:
        raise SystemExit(f"unknown images {unknown}; known: {', '.join(IMAGES)}")
    return [IMAGES[n] for n in names or CPU_IMAGES]


def table(rows: list[dict[str, str]]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    widths = {k: max(len(k), *(len(row.get(k, "")) for row in rows)) for k in keys}
    say("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        say("  ".join(row.get(k, "").ljust(widths[k]) for k in keys))


def cmd_build(args: argparse.Namespace) -> None:
    rows, started = [], time.monotonic()
    for image in selected(args.images):
        seconds = build(image, base_for(image, args.base, args.rebuild_base), args.no_cache)
        args.rebuild_base = False
        size = size_mb(image.ref)
        rows.append(
            {
                "image": image.ref,
                "build_s": f"{seconds:.0f}",
                "size_mb": f"{size:.0f}",
                "budget_mb": str(image.budget_mb),
            }
        )
        if size > image.budget_mb:
            raise SystemExit(f"{image.ref}: {size:.0f} MB, over its {image.budget_mb} MB budget")
    table(rows)
    say(f"built in {time.monotonic() - started:.0f}s")


def cmd_start(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        raise SystemExit("start mounts the images and chroots into them: run it as root")
    rows = []
    with tempfile.TemporaryDirectory(prefix="harmeval-img-") as tmp, tcp_postgres() as pg:
        for image in selected(args.images):
            if image.gpu:
                found = check_imports(image, Path(tmp))
            else:
                db = pg.database(f"img_{image.name}_{os.getpid()}")
                found = check_service(image, db, Path(tmp))
            rows.append({"image": image.name, **found})
    table(rows)


def cmd_save(args: argparse.Namespace) -> None:
    folder = data_dir() / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for image in selected(args.images):
        target = folder / image.archive
        # The image id the archive holds, beside it: an unchanged image is not saved again.
        saved_id = target.with_name(target.name + ".id")
        current = image_id(image.ref)
        if target.exists() and saved_id.exists() and saved_id.read_text() == current:
            say(f"save: {target} holds {image.ref} already")
            continue
        partial = target.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        started = time.monotonic()
        podman("save", "--format", "oci-archive", "--output", str(partial), image.ref)
        partial.replace(target)
        saved_id.write_text(current)
        say(
            f"save: {target} ({target.stat().st_size / 1e6:.0f} MB, "
            f"{time.monotonic() - started:.0f}s)"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("build", "build images (default: the CPU ones)"),
        ("start", "start each image's entrypoint under chroot and check it"),
        ("save", "podman save each image as an OCI archive under <data dir>/images"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("images", nargs="*", help=f"of {', '.join(IMAGES)}")
        if name == "build":
            p.add_argument(
                "--base",
                choices=("auto", "registry", "debian"),
                default=os.environ.get("IMAGE_BASE", "auto"),
                help="base image: the Dockerfile's (pulled), the local Debian one, or the "
                "former when it can be pulled (IMAGE_BASE)",
            )
            p.add_argument("--no-cache", action="store_true", help="rebuild every layer")
            p.add_argument("--rebuild-base", action="store_true", help="make the Debian base again")
    args = parser.parse_args(argv)
    {"build": cmd_build, "start": cmd_start, "save": cmd_save}[args.command](args)


if __name__ == "__main__":
    main()
