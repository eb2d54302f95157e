"""Makes the project importable from a plain checkout (no install needed for pytest)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
