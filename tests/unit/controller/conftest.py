"""The controller unit tests import their in-memory API (``fake_api``) from this directory."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import fake_api`
