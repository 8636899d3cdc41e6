"""The service pod can write its data directory on a fresh volume, as the user it runs as.

A fresh PersistentVolume's root belongs to root (mode 0755), and the image's ``chown`` of the
mount point is hidden by the mount. With the pod's ``securityContext.fsGroup`` the kubelet makes
the volume the group's: it changes the group to fsGroup and adds setgid and ``g+rwx``
(kubernetes pkg/volume/volume_linux.go), and the container's processes carry fsGroup among their
supplementary groups. :func:`mount` does the same to a real directory; the service process then
starts as the pod's user and groups, the command the image runs.

Only root can hand a directory to root and start a process as another user: as root (as in CI)
the real service is started with ``setpriv``; otherwise :func:`writable` computes the access
from the same ownership model. The process also gets the capability to read and search files
(never to write them): the test's Python lives under root's private home, where the image's
lives in ``/usr/local``.
"""

from __future__ import annotations

import copy
import os
import stat
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from http_helpers import free_port
from knative_emulator.service import image_command

ROOT = Path(__file__).parent.parent
KNATIVE = ROOT / "knative"

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="handing a directory to root and switching users needs root; "
                             "test_the_ownership_model_* checks the same access without it")


def service() -> dict:
    return yaml.safe_load((KNATIVE / "service.yaml").read_text())


def without_fs_group(manifest: dict) -> dict:
    changed = copy.deepcopy(manifest)
    del changed["spec"]["template"]["spec"]["securityContext"]["fsGroup"]
    return changed


def identity(manifest: dict) -> tuple[int, int, list[int]]:
    """The uid, gid and supplementary groups of the container's processes."""
    pod = manifest["spec"]["template"]["spec"]
    merged = {**pod.get("securityContext", {}), **pod["containers"][0].get("securityContext", {})}
    groups = [merged["fsGroup"]] if "fsGroup" in merged else []
    return merged["runAsUser"], merged.get("runAsGroup", 0), groups + merged.get("supplementalGroups", [])


def fresh_volume(manifest: dict) -> tuple[int, int, int]:
    """Owner, group and mode of a fresh volume's root once the kubelet mounted it for the pod."""
    fs_group = manifest["spec"]["template"]["spec"].get("securityContext", {}).get("fsGroup")
    if fs_group is None:
        return 0, 0, stat.S_IFDIR | 0o755
    return 0, fs_group, stat.S_IFDIR | 0o755 | stat.S_ISGID | 0o660 | 0o110


def writable(owner: int, group: int, mode: int, uid: int, gids: list[int]) -> bool:
    """Whether a process may create files in a directory (write and search), by POSIX permission classes."""
    bits = (mode >> 6) if uid == owner else (mode >> 3) if group in gids else mode
    return bits & 0o3 == 0o3


def mount(path: Path, manifest: dict) -> None:
    owner, group, mode = fresh_volume(manifest)
    os.chown(path, owner, group)
    os.chmod(path, stat.S_IMODE(mode))


def test_the_ownership_model_lets_the_pods_user_create_its_database():
    uid, gid, groups = identity(service())
    assert uid != 0
    assert writable(*fresh_volume(service()), uid, [gid, *groups])


def test_the_ownership_model_refuses_the_pods_user_without_fs_group():
    uid, gid, groups = identity(without_fs_group(service()))
    assert not writable(*fresh_volume(without_fs_group(service())), uid, [gid, *groups])


def container_env(manifest: dict, volume: Path, port: int) -> dict[str, str]:
    """The container's environment from the ConfigMap and the Service, with /data at ``volume``
    and nothing that needs a cluster."""
    config = yaml.safe_load((KNATIVE / "config.yaml").read_text())["data"]
    env = {key: value.replace("/data", str(volume)) for key, value in config.items()}
    for item in manifest["spec"]["template"]["spec"]["containers"][0]["env"]:
        env[item["name"]] = item.get("value", "a-token-from-the-secret")
    return {**env, "KATUNA_WORKDIR": str(ROOT), "KATUNA_K8S_API": f"http://127.0.0.1:{free_port()}",
            "K_SINK": f"http://127.0.0.1:{free_port()}/", "PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture
def volume() -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="katuna-volume-"))
    top.chmod(0o755)
    (top / "data").mkdir()
    yield top / "data"
    subprocess.run(["rm", "-rf", str(top)], check=True)


def start_as_pod(manifest: dict, volume: Path) -> tuple[subprocess.Popen, int]:
    uid, gid, groups = identity(manifest)
    port = free_port()
    switch = ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={','.join(map(str, groups or [gid]))}",
              "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]
    process = subprocess.Popen(switch + image_command(port), cwd=ROOT, env=container_env(manifest, volume, port),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, port


def ready(port: int) -> bool:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz", headers={"Host": "127.0.0.1"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def outcome(process: subprocess.Popen, port: int, deadline: float = 60) -> str:
    """``ready`` once the service answers ready, or the output of a process that exited."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            return process.stdout.read()
        if ready(port):
            return "ready"
        time.sleep(0.2)
    raise AssertionError("the service neither became ready nor stopped")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


@as_root
@pytest.mark.slow
def test_the_service_starts_on_a_fresh_volume_as_the_pods_user(volume):
    manifest = service()
    mount(volume, manifest)
    process, port = start_as_pod(manifest, volume)
    try:
        assert outcome(process, port) == "ready"
    finally:
        stop(process)
    database = (volume / "katuna.db").stat()
    uid, _, groups = identity(manifest)
    assert (database.st_uid, database.st_gid) == (uid, groups[0])


@as_root
@pytest.mark.slow
def test_without_fs_group_the_service_cannot_create_its_database_and_stops(volume):
    manifest = without_fs_group(service())
    mount(volume, manifest)
    process, port = start_as_pod(manifest, volume)
    try:
        output = outcome(process, port)
    finally:
        stop(process)
    assert output != "ready" and process.returncode != 0
    assert f"cannot create the database {volume / 'katuna.db'}: Permission denied" in output
    assert not (volume / "katuna.db").exists()
