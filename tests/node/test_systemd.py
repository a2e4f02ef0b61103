"""The systemd unit passes ``systemd-analyze verify``; the install snippets are well-formed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"


@pytest.mark.requires_tool("systemd-analyze", "verifying the unit (Debian package systemd)")
def test_unit_verifies(tmp_path):
    # the unit names the install path; point it at this checkout's console script
    exe = Path(sys.executable).parent / "cinestrain"
    unit = (SYSTEMD / "cinestrain.service").read_text()
    assert "cinestrain serve --config" in unit
    (tmp_path / "cinestrain.service").write_text(
        unit.replace("/opt/cinestrain/.venv/bin/cinestrain", str(exe))
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "cinestrain.service")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_sysusers_and_tmpfiles_snippets():
    users = [ln.split() for ln in (SYSTEMD / "sysusers.d" / "cinestrain.conf").read_text()
             .splitlines() if ln and not ln.startswith("#")]
    assert users[0][:2] == ["u", "cinestrain"]
    dirs = [ln.split() for ln in (SYSTEMD / "tmpfiles.d" / "cinestrain.conf").read_text()
            .splitlines() if ln and not ln.startswith("#")]
    assert ["d", "/var/lib/cinestrain", "0750", "cinestrain", "cinestrain", "-"] in dirs
    assert all(len(fields) == 6 for fields in dirs)
