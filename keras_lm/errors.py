"""The error raised for a user's mistake (a bad argument, flag or file)."""


class UsageError(ValueError):
    """A user mistake, reported as one line that names the argument and value.

    It is a `ValueError`, so Python callers catch it as usual; the command line
    prints its message and exits with code 2, without a traceback.

    Example:
    >>> try:
    ...     raise UsageError("--batch_size must be > 0, got 0")
    ... except ValueError as error:
    ...     print(error)
    --batch_size must be > 0, got 0
    """
