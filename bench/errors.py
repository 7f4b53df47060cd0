class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2, nothing written."""


class RunFailed(Exception):
    """A run stopped (non-finite loss, ...): reported in one line and recorded in its folder."""
