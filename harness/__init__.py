"""foresight-harness: an open reproduction of arXiv 2606.27483 (foresight planning for LLM agents)."""

__version__ = "0.1.0"
