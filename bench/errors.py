class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2, nothing written."""


class RunFailed(Exception):
    """A run stopped (non-finite loss, ...): reported in one line and recorded in its folder."""


def first_line(error: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message, for one-line reports; ``default`` (else the
    exception's type name) when the message is empty."""
    lines = str(error).strip().splitlines()
    if lines:
        return lines[0]
    return type(error).__name__ if default is None else default
