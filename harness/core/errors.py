"""The one exception a user can cause: the command line prints it on one line and exits 2."""


class HarnessError(Exception):
    """Bad input the user must fix (unknown name, malformed file, missing run); never a bug."""
