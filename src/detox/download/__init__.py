"""The download stages: every external input materialised under ``data/``, one per stage entry."""
