"""The error raised for a user's mistake (a bad argument, flag or file)."""


class UsageError(ValueError):
    """A user mistake, reported as one line that names the argument and value.

    It is a `ValueError`, so Python callers catch it as usual; the command line
    prints its message and exits with code 2, without a traceback.

    `argument` is the name of the bad argument as Python spells it
    (`sequence_length`), and the message starts with it. The command line
    shows the flag the user typed instead (`--sequence_length`, or another
    name where the flag differs): `spelled_as(flag)` swaps the leading name,
    so no layer below the command line ever spells a flag.

    Example:
    >>> try:
    ...     raise UsageError("batch_size must be > 0, got 0", argument="batch_size")
    ... except ValueError as error:
    ...     print(error)
    ...     print(error.spelled_as("--batch_size"))
    batch_size must be > 0, got 0
    --batch_size must be > 0, got 0
    """

    def __init__(self, message, argument=None):
        if argument is not None and not message.startswith(argument):
            raise TypeError(f"a UsageError's message must start with its argument "
                            f"{argument!r}, got {message!r}")
        super().__init__(message)
        self.argument = argument

    def spelled_as(self, name):
        """The message with its leading argument replaced by `name` (e.g. a flag)."""
        message = str(self)
        if self.argument is None:
            return message
        return name + message[len(self.argument):]


class TrainingDiverged(RuntimeError):
    """A run whose loss became NaN or infinite: not a user's typo, but not a result either.

    The command line prints its one-line message and exits with code 1; the
    run's `model.keras` is never written from the diverged weights (its last
    good checkpoint and backup stay as they were).

    Example:
    >>> str(TrainingDiverged(step=7, loss=float("nan"), advice="lower learning_rate"))
    'training diverged: the loss became nan at step 7; lower learning_rate'
    """

    def __init__(self, step, loss, advice):
        super().__init__(f"training diverged: the loss became {loss} at step {step}; {advice}")
        self.step = step
        self.loss = loss
