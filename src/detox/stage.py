"""What every stage script shares: load params, run, turn user errors into one line."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

from detox import DetoxError
from detox.params import Params, load_params


def run_stage(main: Callable[[Params], None]) -> None:
    """Run ``main(params)``; a DetoxError prints ``error: ...`` and exits 2 with no traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # TRL 0.11 warns that PPOTrainer is deprecated and that no dataset was given: both by design.
    warnings.filterwarnings("ignore", category=FutureWarning, module="trl")
    warnings.filterwarnings("ignore", message="No dataset is provided")
    try:
        main(load_params())
    except DetoxError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
