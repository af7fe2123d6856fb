"""The synthetic-task flags shared by `keras-lm train` and `keras-lm sweep`."""

import functools

from absl import flags

from keras_lm.training.task_run import TASK_ARGS


def define_task_flags(flag_values, module_name):
    """Defines --task and the task parameters (all None: the task's defaults).

    Listed under `module_name` (the subcommand's module), so its --help and
    its flag loop see them.
    """
    string, integer, boolean = (
        functools.partial(define, flag_values=flag_values)
        for define in (flags.DEFINE_string, flags.DEFINE_integer, flags.DEFINE_boolean))
    string("task", None,
           "Train on a synthetic task instead of text: induction, mqar, fewshot or addition "
           "(keras_lm.data.synthetic); --vocab_size is then its number of ids.")
    integer("induction_min_length", None, "induction: shortest repeated block (default L/8).")
    integer("induction_max_length", None, "induction: longest repeated block (default L/2).")
    integer("mqar_num_pairs", None, "mqar: key-value pairs N (default 8; needs 4N <= L).")
    integer("fewshot_k", None, "fewshot: examples of each item, the last one unseen (default 8).")
    integer("fewshot_labels", None, "fewshot: number of labels (default 2).")
    integer("addition_digits", None, "addition: digits of each operand (default 3).")
    boolean("addition_reverse", None, "addition: write the sum least significant digit first "
            "(default true).")
    for name in ("task",) + TASK_ARGS:
        flag_values.register_flag_by_module(module_name, flag_values[name])


def task_args_from(flag_values):
    """The task parameters given on the command line, as a dict."""
    return {name: flag_values[name].value for name in TASK_ARGS if flag_values[name].present}
