"""The error types the scripts turn into a one-line message."""


class UserError(ValueError):
    """Bad input from the user: a file, flag or value that can't work.

    The message names the file or flag and says what to do; scripts print it on one
    line instead of a traceback (exit status 2, as for a bad flag). It subclasses
    ValueError so library callers can catch it the usual way.
    """
    exit_status = 2


class WriteError(UserError):
    """A write the machine refused (no space left, quota, read-only file system,
    permissions): the input was fine, so the exit status is 1, not a usage error's 2.
    The message names the file or folder, the cause and what was kept."""
    exit_status = 1


class PeerFailed(UserError):
    """Another process of a torchrun job failed and printed why; this one exits quietly,
    so the job's output ends with that one message, not a copy per rank, and with that
    process's exit status (1 for a refused write, 2 for bad input), whichever ends first."""

    def __init__(self, message: str, exit_status: int = 2):
        super().__init__(message)
        self.exit_status = exit_status
