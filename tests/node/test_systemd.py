"""The system install: the unit passes ``systemd-analyze verify`` and rates 3.0 or less in
``systemd-analyze security``; its hardening directives; the sysusers.d and tmpfiles.d files
create exactly the user and folders it uses, and the README's install steps name them;
``Type=notify``: the node says READY=1 once its port listens, WATCHDOG=1 from its ticks
and STOPPING=1, on a real unix datagram socket."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from cinestrain.node.service import Node
from cinestrain.node.systemd_notify import NOTIFY_SOCKET, notify

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
UNIT = SYSTEMD / "cinestrain.service"
README = ROOT / "README.md"
#: the README section the unit's header cites
SECTION = "Run under systemd"
#: the highest exposure ``systemd-analyze security`` may give the unit
MAX_EXPOSURE = 3.0


def directives(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit or snippet (comments and section headers left out);
    a key given more than once keeps every value, in order."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def entries(path: Path) -> list[list[str]]:
    """The non-comment lines of a sysusers.d or tmpfiles.d file, split into fields."""
    return [ln.split() for ln in path.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


def systemd_analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                          timeout=120)


# -------------------------------------------------------------------- the unit itself
@pytest.mark.requires_tool("systemd-analyze", "verifying the unit (Debian package systemd)")
def test_unit_verifies(tmp_path):
    # the unit names the install path; point it at this checkout's console script
    exe = Path(sys.executable).parent / "cinestrain"
    unit = UNIT.read_text()
    assert "cinestrain serve --config" in unit
    (tmp_path / "cinestrain.service").write_text(
        unit.replace("/opt/cinestrain/.venv/bin/cinestrain", str(exe))
    )
    result = systemd_analyze("verify", "--man=no", str(tmp_path / "cinestrain.service"))
    assert result.returncode == 0, result.stderr
    assert "cinestrain.service" not in result.stderr, result.stderr  # not even a warning


@pytest.mark.requires_tool("systemd-analyze", "rating the unit (Debian package systemd)")
def test_security_exposure_is_at_most_3():
    version = systemd_analyze("--version").stdout.split()[1]
    if int(version) < 250:  # no --offline: test_unit_is_hardened reads the unit instead
        pytest.skip(f"systemd {version} has no `systemd-analyze security --offline`")
    result = systemd_analyze("security", "--offline=yes", "--no-pager", str(UNIT))
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for cinestrain\.service: (\d+\.\d+)",
                      result.stdout)
    assert match, result.stdout[-2000:]
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_is_hardened():
    """What the security rating rests on, read from the unit (also where systemd is
    absent or too old for ``--offline``)."""
    unit = directives(UNIT.read_text())
    one = {key: values[-1] for key, values in unit.items()}
    for key in ("PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
                "ProtectHome", "PrivateTmp", "PrivateMounts", "NoNewPrivileges",
                "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality",
                "RemoveIPC"):
        assert one.get(key) == "true", key
    assert one["ProtectSystem"] == "strict"
    assert one["ProtectProc"] == "invisible"
    assert one["DevicePolicy"] == "closed"
    assert one["RestrictAddressFamilies"].split() == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert one["SystemCallArchitectures"] == "native"
    assert unit["SystemCallFilter"] == ["@system-service", "~@privileged"]
    assert one["UMask"] == "0027"
    assert one["CapabilityBoundingSet"] == one["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    # torch writes its CPU kernels at run time into memory it makes executable
    assert "MemoryDenyWriteExecute" not in unit
    # the only writable places: state (storage.directory) and logs (logging.file)
    assert one["StateDirectory"] == "cinestrain" and one["LogsDirectory"] == "cinestrain"
    assert "ReadWritePaths" not in unit
    assert (one["Type"], one["NotifyAccess"]) == ("notify", "main")
    assert 60 <= int(one["WatchdogSec"]) <= 600


# ------------------------------------------------------------- the install and the unit
def test_sysusers_and_tmpfiles_snippets():
    users = entries(SYSTEMD / "sysusers.d" / "cinestrain.conf")
    assert users[0][:2] == ["u", "cinestrain"]
    dirs = entries(SYSTEMD / "tmpfiles.d" / "cinestrain.conf")
    assert ["d", "/var/lib/cinestrain", "0750", "cinestrain", "cinestrain", "-"] in dirs
    assert all(len(fields) == 6 for fields in dirs)


def test_the_install_creates_what_the_unit_uses():
    unit = {key: values[-1] for key, values in directives(UNIT.read_text()).items()}
    users = {fields[1] for fields in entries(SYSTEMD / "sysusers.d" / "cinestrain.conf")
             if fields[0] == "u"}
    assert unit["User"] in users and unit["Group"] == unit["User"]
    dirs = {fields[1]: fields[2:5] for fields in entries(SYSTEMD / "tmpfiles.d" /
                                                         "cinestrain.conf")}
    owner = [unit["User"], unit["Group"]]
    # the same folders, owner and mode as systemd makes them for StateDirectory= / LogsDirectory=
    assert dirs[f"/var/lib/{unit['StateDirectory']}"] == [unit["StateDirectoryMode"], *owner]
    assert dirs[f"/var/log/{unit['LogsDirectory']}"] == [unit["LogsDirectoryMode"], *owner]
    config = unit["Environment"].removeprefix("CINESTRAIN_CONFIG=")
    assert config == "/etc/cinestrain/node.toml" and str(Path(config).parent) in dirs
    assert unit["ExecStart"] == f"/opt/cinestrain/.venv/bin/cinestrain serve --config {config}"
    assert unit["ExecStartPre"].endswith(f"cinestrain config check {config}")

    # the unit cites the README section, and that section creates each of them
    assert f'README.md § "{SECTION}"' in UNIT.read_text()
    readme = README.read_text()
    assert f"\n## {SECTION}\n" in readme
    section = readme.split(f"\n## {SECTION}\n", 1)[1].split("\n## ", 1)[0]
    for step in ("git clone REPOSITORY /opt/cinestrain", "python3 -m venv /opt/cinestrain/.venv",
                 "/opt/cinestrain/.venv/bin/pip install /opt/cinestrain",
                 "/usr/lib/sysusers.d/", "/usr/lib/tmpfiles.d/", "systemd-sysusers",
                 "systemd-tmpfiles --create", config, "/etc/systemd/system/",
                 "systemctl enable --now cinestrain"):
        assert step in section, step
    assert "(#run-under-systemd)" in readme


@pytest.mark.requires_tool("systemd-sysusers", "creating the user (Debian package systemd)")
@pytest.mark.requires_tool("systemd-tmpfiles", "creating the folders (Debian package systemd)")
def test_the_snippets_make_the_user_and_folders(tmp_path):
    """The README's two commands, in a scratch root: the user, then its folders."""
    if os.geteuid() != 0:
        pytest.skip("giving folders to another user needs root")
    for kind in ("sysusers.d", "tmpfiles.d"):
        (tmp_path / "usr/lib" / kind).mkdir(parents=True)
        (tmp_path / "usr/lib" / kind / "cinestrain.conf").write_bytes(
            (SYSTEMD / kind / "cinestrain.conf").read_bytes())
    (tmp_path / "etc").mkdir()
    for argv in (["systemd-sysusers", f"--root={tmp_path}", "cinestrain.conf"],
                 ["systemd-tmpfiles", f"--root={tmp_path}", "--create", "cinestrain.conf"]):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    passwd = {ln.split(":")[0]: ln.split(":") for ln in
              (tmp_path / "etc/passwd").read_text().splitlines()}
    uid, gid = int(passwd["cinestrain"][2]), int(passwd["cinestrain"][3])
    assert passwd["cinestrain"][6] == "/usr/sbin/nologin"
    for folder in ("var/lib/cinestrain", "var/log/cinestrain"):
        info = (tmp_path / folder).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (uid, gid, 0o750), folder
    tls = (tmp_path / "etc/cinestrain/tls").stat()
    assert (tls.st_uid, tls.st_gid, tls.st_mode & 0o7777) == (0, gid, 0o750)


# ------------------------------------------------------------------- sd_notify
def listening_socket(address: str) -> socket.socket:
    """A unix datagram socket bound at ``address`` (``@name``: abstract namespace)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.settimeout(30)
    return sock


def test_notify_writes_to_the_socket_systemd_names(monkeypatch):
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:  # short: a unix path is < 108
        path = f"{folder}/notify"
        with listening_socket(path) as sock:
            monkeypatch.setenv(NOTIFY_SOCKET, path)
            assert notify("READY=1", "STATUS=listening")
            assert sock.recv(4096) == b"READY=1\nSTATUS=listening"
    abstract = f"@cinestrain-test-{uuid.uuid4().hex}"
    with listening_socket(abstract) as sock:
        monkeypatch.setenv(NOTIFY_SOCKET, abstract)
        assert notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"
    monkeypatch.setenv(NOTIFY_SOCKET, f"@cinestrain-test-{uuid.uuid4().hex}")
    assert not notify("WATCHDOG=1")  # nobody listens: the node runs on
    monkeypatch.delenv(NOTIFY_SOCKET)
    assert not notify("READY=1")  # not under systemd


def test_the_node_is_ready_once_listening_then_ticks_then_stops(make_config, monkeypatch):
    address = f"@cinestrain-test-{uuid.uuid4().hex}"
    cfg = make_config(worker={"keep_warm": False})
    with listening_socket(address) as sock:
        monkeypatch.setenv(NOTIFY_SOCKET, address)
        node = Node(cfg)
        node.start()
        try:
            message = sock.recv(4096).decode()
            assert message.splitlines() == [
                "READY=1", f"STATUS=listening on 127.0.0.1:{cfg.node.port} as CINESTRAIN"]
            # ready means the port is open
            socket.create_connection(("127.0.0.1", cfg.node.port), timeout=5).close()
            assert sock.recv(4096) == b"WATCHDOG=1"  # from a scheduler tick (0.2 s)
        finally:
            node.stop()
        messages = []
        while (message := sock.recv(4096)) != b"STOPPING=1":
            messages.append(message)  # ticks that ended before the stop
        assert set(messages) <= {b"WATCHDOG=1"}
