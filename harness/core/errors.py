"""The one exception a user can cause: the command line prints it on one line and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """Bad input the user must fix (unknown name, malformed file, missing run); never a bug."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Returns "did you mean 'x'? " naming the known name closest to a misspelt one, or "" when none is close.

    Messages put it before their list of known names: "unknown task 'grph-nav' (did you mean 'graph-nav'? known: ...)".
    """
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean {close[0]!r}? " if close else ""
