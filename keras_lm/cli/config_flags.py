"""Flags made from `TrainConfig`'s fields: their type, help, choices and flag name.

`keras-lm train` defines one flag per field; `keras-lm sweep` the few it
shares. A new run option is then one field of `TrainConfig`, and its flag
follows. Values the user typed map back to field names with
`given_settings`; a `UsageError` about a setting is shown with its flag
(`flag_of`).
"""

import dataclasses
import json

from absl import flags

from keras_lm.errors import UsageError
from keras_lm.training.config import TrainConfig

FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}


def flag_name(setting, fields=FIELDS):
    """The flag of a `TrainConfig` field: `vocabulary_size` -> `vocab_size`."""
    return fields[setting].metadata.get("flag") or setting


def flag_of(argument, fields=FIELDS):
    """How the command line spells `argument` (a setting or another argument name)."""
    if argument in fields and fields[argument].metadata.get("flag"):
        return "--" + fields[argument].metadata["flag"]
    return "--" + argument


def define_config_flags(flag_values, module_name, names, defaults=None, helps=None,
                        fields=FIELDS):
    """Defines the flags of the `TrainConfig` fields `names` in `flag_values`.

    They are listed under `module_name` (the subcommand's module: its --help).
    `defaults` overrides the shown defaults (a recipe's, a sweep's); `helps`
    the help texts. Dicts, lists and tuples are typed as text and parsed by
    `given_settings`. `fields`: the dataclass fields the flags are made
    from (another config's, such as fine-tuning's `FinetuneConfig`).
    """
    defaults, helps = defaults or {}, helps or {}
    for name in names:
        field = fields[name]
        help = helps.get(name, field.metadata["help"])
        default = defaults.get(name, field.default)
        if field.type in (dict, list, tuple) or default is dataclasses.MISSING:
            default = None
        common = dict(flag_values=flag_values)
        flag = flag_name(name, fields)
        if field.type is list:
            flags.DEFINE_multi_string(flag, default, help, **common)
        elif field.metadata.get("choices"):
            flags.DEFINE_enum(flag, default, list(field.metadata["choices"]), help, **common)
        else:
            define = {int: flags.DEFINE_integer, float: flags.DEFINE_float,
                      bool: flags.DEFINE_boolean}.get(field.type, flags.DEFINE_string)
            define(flag, default, help, **common)
        flag_values.register_flag_by_module(module_name, flag_values[flag])


def given_settings(flag_values, names, fields=FIELDS):
    """`{field: value}` of the flags among `names` that the command line gave."""
    values = {}
    for name in names:
        flag = flag_values[flag_name(name, fields)]
        if flag.present:
            values[name] = PARSERS.get(name, lambda value: value)(flag.value)
    return values


def parse_profile_steps(text):
    """'5,7' -> (5, 7): the first and last training step to trace."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise UsageError(f"profile_steps: expected two step numbers 'first,last', got {text!r}",
                         argument="profile_steps")
    return int(parts[0]), int(parts[1])


def parse_model_args(text):
    """'hidden_dim=256,dropout=0.1' -> {'hidden_dim': 256, 'dropout': 0.1}."""
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"model_args: expected name=value, got {item!r}",
                             argument="model_args")
        try:
            result[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            result[key.strip()] = raw
    return result


PARSERS = {"model_args": parse_model_args, "profile_steps": parse_profile_steps}
