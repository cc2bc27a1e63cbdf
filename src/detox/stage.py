"""What every stage script shares: run, and turn user errors into one line."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from detox import DetoxError


def run_stage(main: Callable[..., None], *args: Any) -> None:
    """Run ``main(*args)``; a DetoxError prints ``error: ...`` and exits 2 with no traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # TRL 0.11 warns that PPOTrainer is deprecated and that no dataset was given: both by design.
    warnings.filterwarnings("ignore", category=FutureWarning, module="trl")
    warnings.filterwarnings("ignore", message="No dataset is provided")
    try:
        main(*args)
    except DetoxError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
