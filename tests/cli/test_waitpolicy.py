"""OpenMP threads sleep instead of spinning when the machine is already busy (toolchain/cli/_waitpolicy.py)."""

import os
import subprocess
import sys

from toolchain.cli._waitpolicy import sleep_when_busy


def test_busy_machine_gets_passive_waiting_and_a_users_choice_is_kept():
    env: dict[str, str] = {}
    assert sleep_when_busy(env, load_1min=6.5, cpus=2) and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    idle: dict[str, str] = {}
    assert not sleep_when_busy(idle, load_1min=0.4, cpus=2) and idle == {}
    for mine in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "100000"}):
        kept = dict(mine)
        assert not sleep_when_busy(kept, load_1min=50.0, cpus=2) and kept == mine


SCRIPT = """
import os, sys
os.getloadavg = lambda: ({load}, 0.0, 0.0)
sys.argv = ["deploy", "--help"]
from toolchain.cli import main
try:
    main()
except SystemExit:
    pass
print("POLICY=" + os.environ.get("OMP_WAIT_POLICY", "unset"), "torch" in sys.modules)
"""


def test_deploy_sets_it_before_torch_loads_only_when_busy():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    cpus = os.cpu_count() or 1
    for load, want in ((cpus + 0.5, "PASSIVE"), (0.0, "unset")):
        r = subprocess.run([sys.executable, "-c", SCRIPT.format(load=load)], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip().endswith(f"POLICY={want} False"), r.stdout[-500:]
