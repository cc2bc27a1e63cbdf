"""RL detoxification of causal language models (PPO through TRL), as a DVC pipeline."""


class DetoxError(Exception):
    """A problem the user can fix (bad param, bad source, missing file): reported in one line."""
