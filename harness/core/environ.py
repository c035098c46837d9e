"""The environment variables every harness process sets before it imports transformers or datasets."""

QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
"""Offline and quiet; set unless the user set them (the command line, and each Ray worker for itself)."""
