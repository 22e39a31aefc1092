"""The systemd unit: systemd itself accepts it, its command line is one edge-ad parses, and
it runs as a non-root user in the audio group with the hardening the docs promise."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import pytest

from runtime_support import REPO
from ci_env import in_ci

UNIT = REPO / "scripts" / "edge-ad.service"


def _settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_accepts_the_unit(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None and not in_ci():
        pytest.skip("systemd-analyze not installed (scripts/setup.sh installs systemd)")
    # Point ExecStart at this interpreter so verify can check the executable exists.
    text = UNIT.read_text().replace("/opt/edge-ad/venv/bin/edge-ad", f"{sys.executable} -m edge")
    unit = tmp_path / "edge-ad.service"
    unit.write_text(text)
    r = subprocess.run([tool or "systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=60)
    problems = [l for l in (r.stdout + r.stderr).splitlines()
                if "edge-ad.service" in l and "network-online" not in l]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_the_unit_command_line_is_one_edge_ad_accepts():
    from edge.cli import build_parser

    s = _settings()
    env = dict(re.findall(r"(\w+)=(\S+)", s["Environment"][0]))
    env["EDGE_AD_ARGS"] = "--alarm 3/5 --mqtt mqtts://broker.example:8883 --mqtt-user fan1"
    cmd = s["ExecStart"][0]
    cmd = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], cmd)
    argv = shlex.split(cmd)[1:]
    parser, _ = build_parser(argv)
    args = parser.parse_args(argv)
    assert args.command == "run" and args.device == "default"
    assert args.spool.startswith("/var/lib/edge-ad/")  # inside StateDirectory, writable


def test_the_unit_runs_unprivileged_restarts_on_failure_and_is_hardened():
    s = _settings()
    want = {"User": "edge-ad", "SupplementaryGroups": "audio", "Restart": "on-failure",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
            "PrivateTmp": "yes", "StateDirectory": "edge-ad", "DevicePolicy": "closed",
            "DeviceAllow": "char-alsa rw", "CapabilityBoundingSet": "", "KillSignal": "SIGTERM"}
    for key, value in want.items():
        assert s.get(key) == [value], key
    assert int(s["RestartSec"][0]) > 0
    assert re.fullmatch(r"\d+M", s["MemoryMax"][0])
    # Exit codes that a restart cannot fix stop the service (see edge/errors.py).
    from edge.errors import EXIT_BAD_INPUT, EXIT_BUNDLE_INVALID

    assert set(s["RestartPreventExitStatus"][0].split()) == {str(EXIT_BAD_INPUT), str(EXIT_BUNDLE_INVALID)}
    assert "/var/lib/edge-ad" in s["ReadWritePaths"][0]
