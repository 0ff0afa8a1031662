"""tests/comm: ranks run as separate processes on loopback (ranks.py); the helper modules
of this directory are importable by the tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
