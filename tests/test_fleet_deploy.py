"""The nightly fleet job's systemd service and timer: systemd accepts both, the timer starts
the service, and the service's command line is one edge-ad parses (issue 11)."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import pytest

from runtime_support import REPO
from ci_env import in_ci

SERVICE = REPO / "scripts" / "edge-ad-fleet.service"
TIMER = REPO / "scripts" / "edge-ad-fleet.timer"


def _settings(path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_accepts_the_service_and_timer(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None and not in_ci():
        pytest.skip("systemd-analyze not installed (scripts/setup.sh installs systemd)")
    text = SERVICE.read_text().replace("/opt/edge-ad/venv/bin/edge-ad", f"{sys.executable} -m edge")
    (tmp_path / SERVICE.name).write_text(text)
    shutil.copy(TIMER, tmp_path / TIMER.name)
    r = subprocess.run([tool or "systemd-analyze", "verify", str(tmp_path / SERVICE.name),
                        str(tmp_path / TIMER.name)], capture_output=True, text=True, timeout=60)
    problems = [l for l in (r.stdout + r.stderr).splitlines()
                if "edge-ad-fleet" in l and "network-online" not in l and "remote-fs" not in l]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
    # The calendar expression is one systemd can schedule.
    r = subprocess.run([tool or "systemd-analyze", "calendar", _settings(TIMER)["OnCalendar"][0]],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Next elapse" in r.stdout, r.stdout + r.stderr


def test_the_timer_starts_the_service_whose_command_line_edge_ad_accepts():
    from edge.cli import build_parser

    assert _settings(TIMER)["Unit"] == [SERVICE.name]
    s = _settings(SERVICE)
    assert s["Type"] == ["oneshot"] and s["User"] == ["edge-ad"]
    env = dict(re.findall(r"(\w+)=(\S+)", s["Environment"][0]))
    env["EDGE_AD_FLEET_ARGS"] = "--scheduler tcp://10.0.0.5:8786 --keep 14"
    cmd = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], s["ExecStart"][0])
    argv = shlex.split(cmd)[1:]
    parser, _ = build_parser(argv)
    args = parser.parse_args(argv)
    assert args.command == "fleet" and args.json and args.scheduler == "tcp://10.0.0.5:8786"
    assert args.out.startswith("/var/lib/edge-ad-fleet")   # the unit's StateDirectory
