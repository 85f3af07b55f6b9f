"""Puts launcher/ on sys.path so that the tests import mtps_launch from the
source tree (imported first by every tests/launcher/*_test.py)."""

import sys
from pathlib import Path

LAUNCHER_DIR = Path(__file__).resolve().parents[2] / "launcher"
if str(LAUNCHER_DIR) not in sys.path:
    sys.path.insert(0, str(LAUNCHER_DIR))
