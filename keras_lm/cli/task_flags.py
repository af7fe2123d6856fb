"""The synthetic-task flags shared by `keras-lm train` and `keras-lm sweep`."""

import dataclasses

from absl import flags

from keras_lm.data.synthetic import TASK_PARAMETERS, TASKS, Task


def define_task_flags(flag_values, module_name):
    """Defines --task and one flag per task parameter (all None: the task's defaults).

    Made from the fields of `keras_lm.data.synthetic.Task` (type and help),
    listed under `module_name` (the subcommand's module), so its --help and
    its flag loop see them.
    """
    flags.DEFINE_string(
        "task", None, f"Train on a synthetic task instead of text: {', '.join(TASKS)} "
        "(keras_lm.data.synthetic); --vocab_size is then its number of ids.",
        flag_values=flag_values)
    for field in dataclasses.fields(Task):
        if field.name in TASK_PARAMETERS:
            define = {bool: flags.DEFINE_boolean, str: flags.DEFINE_string}.get(
                field.type, flags.DEFINE_integer)
            define(field.name, None, field.metadata["help"], flag_values=flag_values)
    for name in ("task",) + TASK_PARAMETERS:
        flag_values.register_flag_by_module(module_name, flag_values[name])


def task_args_from(flag_values):
    """The task parameters given on the command line, as a dict."""
    return {name: flag_values[name].value for name in TASK_PARAMETERS
            if flag_values[name].present}
