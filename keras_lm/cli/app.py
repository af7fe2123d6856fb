"""Running a subcommand: absl flags, one-line errors, exit code 2 (1 for a diverged run)."""

import contextlib
import logging
import os
import sys

from absl import flags

from keras_lm.errors import TrainingDiverged, UsageError

USAGE_ERROR = 2
# A run that started and failed (its loss became NaN): not a usage mistake.
RUN_FAILED = 1


def fail(program, message):
    """Prints `program: error: message` on stderr and exits with code 2."""
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def run_subcommand(main, FLAGS, argv, module_name, doc, flag_of=None):
    """Parses `argv` into `FLAGS` (a FlagValues) and runs `main()`; mistakes exit 2.

    A `UsageError` naming an argument is shown with the flag the user typed:
    `flag_of(argument)`, by default `--argument`.

    We parse with absl's FLAGS directly rather than `absl.app.run`: app.run
    prints a multi-line usage and exits 1 on a bad flag, where we promise one
    line and exit code 2; and its `--help` lists the flags of `sys.argv[0]`
    (the console script), not of the subcommand.
    """
    program = argv[0]
    if any(arg in ("-h", "--help", "-help", "--helpfull") for arg in argv[1:]):
        print(doc.strip() + "\n")
        print(FLAGS.module_help(module_name))
        sys.exit(0)
    FLAGS.unparse_flags()  # back to defaults, so repeated in-process runs are independent
    try:
        remaining = FLAGS(argv)
    except flags.Error as error:
        fail(program, error)
    if len(remaining) > 1:
        fail(program, f"unexpected argument {remaining[1]!r} (flags look like --name=value)")
    _quiet_tensorflow()
    try:
        with _library_warnings_printed(program):
            main()
    except UsageError as error:
        flag = (flag_of or default_flag)(error.argument) if error.argument else None
        fail(program, error.spelled_as(flag) if flag else error)
    except TrainingDiverged as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        sys.exit(RUN_FAILED)
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        sys.exit(130)


def default_flag(argument):
    """A library argument's flag: `--` and the same name."""
    return "--" + argument


@contextlib.contextmanager
def _library_warnings_printed(program):
    """keras_lm's logged warnings (e.g. a truncated prompt) as `program: warning: ...`."""
    logger = logging.getLogger("keras_lm")
    handler = logging.StreamHandler(sys.stderr)  # the current stderr, also under test capture
    handler.setFormatter(logging.Formatter(f"{program}: warning: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:  # leave the process as it was (commands also run in-process)
        logger.removeHandler(handler)
        logger.propagate = True


def _quiet_tensorflow():
    # TensorFlow's C++ start-up chatter hides our output; warnings still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import logging

    logging.set_verbosity(logging.WARNING)
