"""Fixtures of the agent unit tests: a fake API (records every request), a pod source, and a fake
node (cgroup files in a temporary directory driven by a hand-advanced clock) that burns what each
pod demands within its limit, the way CFS would."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import agent_fakes`
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cgroups"))  # `import fake_cgroupfs`
