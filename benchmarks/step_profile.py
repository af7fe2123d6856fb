"""Where a training step's time goes: a profile's XLA operations, grouped.

`keras-lm train --profile_steps=A,B` writes a TensorBoard profile of steps
A-B (the Profile tab shows it op by op). This script reads that same file
and prints one table of the compiled step's time by kind of operation
(matrix products, softmax exponentials, transposes, ...), which is the
figure BENCHMARKS.md records. TensorBoard's own op-stats tool lists host
(TensorFlow) ops only: an XLA-compiled step is one opaque op there, so we
read the trace events of XLA's CPU thunks instead.

    keras-lm train --steps=40 --eval_interval=40 --val_steps=2 --profile_steps=30,34 \\
        --nosamples --output_dir=/tmp/profiled
    python benchmarks/step_profile.py /tmp/profiled/logs/train/plugins/profile/*/*.xplane.pb
"""

import collections
import json
import re
import sys

from xprof.convert import raw_to_tool_data

# Trace events that wrap the step (runtime, executor, thread pool), not operations in it.
RUNTIME = re.compile(
    r"^(ThreadpoolListener|Profiled batch|ThunkExecutor|multi_step_on_iterator|one_step_on|Eager|"
    r"TFE_Py|KernelAndDeviceFunc|ExecutorState|CpuExecutable|BlockUntilReady|SlinkyThreadPool)"
)
MATMUL = re.compile(r"^(MatMul|dot|Einsum|BatchMatMul|convolution)", re.IGNORECASE)


def operation_kind(name):
    """'MatMul.140' -> 'MatMul'; 'subtract_exponential_fusion.3' -> 'subtract_exponential_fusion'."""
    return re.sub(r"([._]\d+)+$", "", name)


def step_breakdown(xplane_path):
    """{kind: (microseconds, count)} of the profiled steps' XLA operations."""
    data, _ = raw_to_tool_data.xspace_to_tool_data([xplane_path], "trace_viewer", {})
    events = [e for e in json.loads(data)["traceEvents"]
              if e.get("ph") == "X" and not RUNTIME.match(e["name"])]
    totals = collections.defaultdict(lambda: [0.0, 0])
    for event in events:
        total = totals[operation_kind(event["name"])]
        total[0] += event.get("dur", 0)
        total[1] += 1
    return {kind: tuple(value) for kind, value in totals.items()}


def main(paths):
    if not paths:
        raise SystemExit(__doc__)
    for path in paths:
        breakdown = step_breakdown(path)
        total = sum(us for us, _ in breakdown.values())
        matmul = sum(us for kind, (us, _) in breakdown.items() if MATMUL.match(kind))
        print(f"{path}\nXLA operations: {total / 1e3:,.1f} ms; matrix products "
              f"{matmul / total:.1%}\n")
        print("| operation | ms | share | calls |\n|---|---|---|---|")
        for kind, (us, count) in sorted(breakdown.items(), key=lambda kv: -kv[1][0])[:15]:
            print(f"| {kind} | {us / 1e3:,.1f} | {us / total:.1%} | {count} |")


if __name__ == "__main__":
    main(sys.argv[1:])
