"""The one exception type for mistakes a user can make.

The CLI prints a `GenlabError` as a single line (no traceback) and exits with status 2;
anything else is a bug and keeps its traceback.
"""


class GenlabError(Exception):
    """A user-facing error: the message names the file or key at fault and the fix."""


class Interrupted(GenlabError):
    """Ctrl-C or SIGTERM stopped a long job after saving what it had; the message says how to continue."""
