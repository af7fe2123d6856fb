"""What `keras-lm train` prints: one line per evaluation, a live line on a terminal.

Keras' own progress bar counts "epochs" (our evaluation intervals) of a
length the clock may cut short, and piped into a file it writes a
carriage-return update per batch (~600 KB for the quickstart). Here:

- `verbose=0`: nothing;
- `verbose=1` (default): on a terminal, a live line updated in place (at
  most twice a second), and the lines below; piped or redirected, the lines
  below only (no carriage return at all);
- `verbose=2`: the lines below only.

The lines that stay: the run's start, one per evaluation (step, tokens seen,
training loss, validation loss and bits per byte, tokens per second, time
left) and the summary at the end.

Example:
>>> import io
>>> console = Console(verbose=2, stream=io.StringIO())
>>> console.line("hello")
>>> console.stream.getvalue()
'hello\\n'
>>> format_duration(3725)
'1h 02m'
"""

import sys
import time

import keras

from keras_lm import data

# The live line is redrawn at most this often (seconds).
LIVE_PERIOD = 0.5


class Console:
    """Prints the run's lines; `live` decides whether a line is redrawn in place."""

    def __init__(self, verbose=1, stream=None):
        self.verbose = verbose
        self.stream = stream or sys.stdout
        is_terminal = getattr(self.stream, "isatty", lambda: False)()
        self.live = verbose == 1 and is_terminal
        self._live_width = 0

    def line(self, text):
        """Prints `text` as lines that stay (nothing with `verbose=0`)."""
        if self.verbose:
            self.clear_live()
            self.stream.write(text + "\n")
            self.stream.flush()

    def update_live(self, text):
        """Redraws the live line (a terminal at `verbose=1` only)."""
        if self.live:
            padding = " " * max(0, self._live_width - len(text))
            self.stream.write("\r" + text + padding)
            self.stream.flush()
            self._live_width = len(text)

    def clear_live(self):
        if self.live and self._live_width:
            self.stream.write("\r" + " " * self._live_width + "\r")
            self._live_width = 0


class ProgressLog(keras.callbacks.Callback):
    """Writes a run's progress to a `Console`; put it after `LanguageModelLogs`.

    Args:
        console: where the lines go.
        total_steps: the run's length in steps (an upper bound when a clock
            ends the run).
        tokens_per_step: tokens in one training batch.
        seconds: the clock's length when the run is timed, else None.
        start: the run's start (`time.time()`), for the time left.
        small_batch_steps: the first steps that read a quarter of
            `tokens_per_step` (`--batch_warmup_steps`).
        metrics: more figures of the logs to print after the validation
            loss, `(key, name)` pairs (a classifier's accuracy).
    """

    def __init__(self, console, total_steps, tokens_per_step, seconds=None, start=None,
                 small_batch_steps=0, metrics=()):
        super().__init__()
        self.metrics = tuple(metrics)
        self.console = console
        self.total_steps = total_steps
        self.tokens_per_step = tokens_per_step
        self.small_batch_steps = small_batch_steps
        self.seconds = seconds
        self.start = time.time() if start is None else start
        self._last_draw = 0.0

    def on_train_begin(self, logs=None):
        self._first_step = self._step()
        self._fit_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if not self.console.live or time.time() - self._last_draw < LIVE_PERIOD:
            return
        self._last_draw = time.time()
        loss = (logs or {}).get("loss")
        self.console.update_live(
            f"step {self._step():,}/{self.total_steps:,}"
            + (f"  loss {float(loss):.3f}" if loss is not None else "")
            + f"  {self._time_left()}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        step = self._step()
        tokens = data.tokens_after(step, self.tokens_per_step, self.small_batch_steps)
        parts = [f"step {step:,}", f"{tokens:,} tokens"]
        if "loss" in logs:
            parts.append(f"loss {logs['loss']:.3f}")
        if "val_loss" in logs:
            val = f"val {logs['val_loss']:.3f}"
            if "val_bits_per_byte" in logs:
                val += f" ({logs['val_bits_per_byte']:.3f} bits/byte)"
            parts.append(val)
        parts += [f"{name} {logs[key]:.3f}" for key, name in self.metrics if key in logs]
        if "tokens_per_second" in logs:
            parts.append(f"{logs['tokens_per_second']:,.0f} tokens/s")
        parts.append(self._time_left())
        self.console.line("  ".join(parts))

    def on_train_end(self, logs=None):
        self.console.clear_live()

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def _time_left(self):
        if self.seconds is not None:
            left = self.seconds - (time.time() - self.start)
        else:
            done = self._step() - self._first_step
            rate = done / max(time.time() - self._fit_start, 1e-9)
            left = (self.total_steps - self._step()) / rate if done else None
        return "time left " + ("?" if left is None else format_duration(max(left, 0)))


def format_duration(seconds):
    """`42s`, `5m 03s`, `1h 02m`: a duration at a glance."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
