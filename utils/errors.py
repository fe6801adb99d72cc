"""The error types the scripts turn into a one-line message."""


class UserError(ValueError):
    """Bad input from the user: a file, flag or value that can't work.

    The message names the file or flag and says what to do; scripts print it on one
    line instead of a traceback. It subclasses ValueError so library callers can
    catch it the usual way.
    """


class PeerFailed(UserError):
    """Another process of a torchrun job failed and printed why; this one exits quietly
    (status 2) so the job's output ends with that one message, not a copy per rank."""
