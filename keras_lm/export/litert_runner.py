"""Run a `.tflite` file written by `keras_lm.export.tflite` with LiteRT, in NumPy.

This module needs only `numpy`, `ai_edge_litert` (and `flatbuffers`, which
`ai_edge_litert` depends on): it never imports Keras or TensorFlow, so it runs
where an app's Python would, and shows what an app does with the file:

1. `prefill_{N}`: the first `N` prompt tokens (`tokens`) at positions
   `0..N-1` (`input_pos`), from the zero state, in one call;
2. `decode`: every further token, one call per position (`input_pos`),
   feeding each call's state outputs back as the next call's inputs of the
   same names (`kv_cache_k_0`, ...).

`run_prompt` is that loop, written once (generation and the parity checks
of `keras_lm.export.verify` both run prompts through it). A file whose
metadata records its `signature_specs` is checked against them on load.

See `keras_lm.export.tflite` for the file's signatures and tensor names.

`keras_lm.export.json_tokenizer.JsonTokenizer` reads the bundle's
`tokenizer.json` (plain JSON, no TensorFlow) and `choose_token` samples in
NumPy, so `generate_text` is the whole text-in, text-out loop of an app.

Example (not run here: it needs an exported file):

    runner = LiteRTRunner("model.tflite")
    new_ids = runner.generate_ids([72, 105], max_new_tokens=20, end_id=257)
"""

import json
import re

import numpy as np

METADATA_NAME = "keras_lm"
_PREFILL = re.compile(r"^prefill_(\d+)$")
_NON_BUILTIN_PREFIX = "CUSTOM:"


def _schema():
    # Imported on use: ai_edge_litert loads LiteRT's native library, which
    # importing keras_lm.export (it imports this module) does not need.
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _model_bytes(model):
    """`model` as bytes: a path, or the bytes of a `.tflite` file."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    with open(model, "rb") as f:
        return f.read()


def _root(data):
    return _schema().Model.GetRootAs(data, 0)


def _operators(root):
    """Yields `(subgraph, operator, name)` for every operator of a parsed file.

    Builtin operators are named as in the schema (`FULLY_CONNECTED`, ...);
    a custom operator, Flex (Select TF) ops included, is named
    `CUSTOM:<custom code>` (e.g. `CUSTOM:FlexErf`).
    """
    schema = _schema()
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            opcode = root.OperatorCodes(op.OpcodeIndex())
            # Codes < 127 live in the deprecated int8 field; the larger of the two is the code.
            code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
            if code == schema.BuiltinOperator.CUSTOM:
                custom = opcode.CustomCode()
                custom = custom.decode() if isinstance(custom, bytes) else str(custom)
                yield subgraph, op, _NON_BUILTIN_PREFIX + custom
            else:
                yield subgraph, op, codes.get(code, f"UNKNOWN_{code}")


def operator_names(model):
    """Every operator name in a `.tflite` file (path or bytes), sorted, one each.

    Named as `_operators` names them; only opcodes some operator uses (the
    converter may list more).
    """
    return sorted({name for _, _, name in _operators(_root(_model_bytes(model)))})


def float_operator_names(model):
    """Operators that read or write float32 activations (sorted, one each).

    Constants (weights) are not counted, nor `QUANTIZE`/`DEQUANTIZE` at the
    float interface. In a fully integer model this is empty; after a
    partial int8 conversion it names the operators that stayed in float.
    """
    schema = _schema()
    root = _root(_model_bytes(model))
    names = set()
    for subgraph, op, name in _operators(root):
        if name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        tensors = [op.Inputs(i) for i in range(op.InputsLength())]
        tensors += [op.Outputs(i) for i in range(op.OutputsLength())]
        for t in tensors:
            if t < 0:
                continue
            tensor = subgraph.Tensors(t)
            buffer = root.Buffers(tensor.Buffer())
            is_constant = tensor.Buffer() > 0 and (
                buffer.DataLength() > 0 or buffer.Size() > 0
            )
            if tensor.Type() == schema.TensorType.FLOAT32 and not is_constant:
                names.add(name)
                break
    return sorted(names)


def read_metadata(model):
    """The `keras_lm` JSON metadata of an exported file (a dict), or None."""
    data = _model_bytes(model)
    root = _root(data)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        name = entry.Name()
        name = name.decode() if isinstance(name, bytes) else name
        if name == METADATA_NAME:
            buffer = root.Buffers(entry.Buffer())
            if buffer.Offset() > 0:  # stored past the flatbuffer (files > 2 GB)
                raw = data[buffer.Offset() : buffer.Offset() + buffer.Size()]
            else:
                raw = buffer.DataAsNumpy().tobytes()
            return json.loads(raw.decode("utf-8"))
    return None


def check_signatures(runners, recorded):
    """Raises ValueError unless each signature's tensors are those `recorded`.

    `runners` maps signature names to LiteRT signature runners; `recorded`
    is the `signature_specs` of the file's metadata (written from
    `keras_lm.export.schema`): `{signature: {"inputs": [{name, shape,
    dtype}], "outputs": [...]}}`.
    """
    for signature, expected in recorded.items():
        if signature not in runners:
            raise ValueError(
                f"model: the metadata records a {signature!r} signature the file lacks "
                f"(it has {sorted(runners)})"
            )
        runner = runners[signature]
        for kind, details in (("inputs", runner.get_input_details()),
                              ("outputs", runner.get_output_details())):
            actual = {
                name: ([int(d) for d in detail["shape"]], np.dtype(detail["dtype"]).name)
                for name, detail in details.items()
            }
            wanted = {e["name"]: (list(e["shape"]), e["dtype"]) for e in expected[kind]}
            if actual != wanted:
                raise ValueError(
                    f"model: the {kind} of {signature!r} are {actual}, "
                    f"the metadata records {wanted}"
                )


class LiteRTRunner:
    """Greedy generation and single steps over an exported `.tflite` file.

    Args:
        model: path of the `.tflite` file (or its bytes).
        max_length: positions a text may reach (default: the `sequence_length`
            recorded in the file; else the key/value cache length).
        num_threads: LiteRT CPU threads (None: LiteRT's default).

    Attributes:
        prefill_lengths: the `N` of each `prefill_{N}` signature, ascending.
        state_specs: `{name: (shape, dtype)}` of the state tensors.
        vocabulary_size, max_length, metadata (the file's JSON, or None).
    """

    def __init__(self, model, *, max_length=None, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter  # optional: see _schema

        data = _model_bytes(model)
        if data[4:8] != b"TFL3":  # the flatbuffer file identifier of every .tflite file
            raise ValueError("not a .tflite file (no TFL3 identifier)")
        self.metadata = read_metadata(data)
        self.interpreter = Interpreter(model_content=data, num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if "decode" not in signatures:
            raise ValueError(
                f"model: no `decode` signature in the file, found {sorted(signatures)}"
            )
        self.prefill_lengths = sorted(
            int(m.group(1)) for m in map(_PREFILL.match, signatures) if m
        )
        self._runners = {name: self.interpreter.get_signature_runner(name) for name in signatures}
        if self.metadata and "signature_specs" in self.metadata:
            check_signatures(self._runners, self.metadata["signature_specs"])
        decode = self._runners["decode"]
        inputs = decode.get_input_details()
        if not {"tokens", "input_pos"} <= set(inputs):
            raise ValueError(
                "model: `decode` takes no `tokens` and `input_pos` (a file exported before "
                f"the LiteRT-LM layout?), it takes {sorted(inputs)}: export it again"
            )
        self.state_specs = {
            name: (tuple(int(d) for d in detail["shape"]), detail["dtype"])
            for name, detail in sorted(inputs.items())
            if name not in ("tokens", "input_pos")
        }
        self.vocabulary_size = int(decode.get_output_details()["logits"]["shape"][-1])
        if max_length is None and self.metadata:
            max_length = self.metadata.get("sequence_length")
        if max_length is None:  # a cache (batch, heads, length, head_dim) bounds positions
            lengths = [shape[2] for shape, _ in self.state_specs.values() if len(shape) == 4]
            max_length = min(lengths) if lengths else None
        self.max_length = max_length
        self._bound = None

    def initial_state(self):
        """The zero state: `{name: np.ndarray}`."""
        return {name: np.zeros(shape, dtype) for name, (shape, dtype) in self.state_specs.items()}

    def prefill(self, token_ids):
        """Runs `N` prompt tokens from position 0 (`N` one of `prefill_lengths`).

        Returns `(logits (1, N, vocabulary), state)`.
        """
        token_ids = np.asarray(token_ids, np.int32).reshape(1, -1)
        length = token_ids.shape[1]
        if length not in self.prefill_lengths:
            raise ValueError(
                f"token_ids: prefill takes one of {self.prefill_lengths} tokens, got {length}"
            )
        outputs = self._runners[f"prefill_{length}"](
            tokens=token_ids, input_pos=np.arange(length, dtype=np.int32), **self.initial_state()
        )
        return self._split(outputs)

    def decode(self, token_id, state, position):
        """Runs one token at `position` over `state`; returns `(logits (1, vocabulary), state)`."""
        if self.max_length is not None and not 0 <= int(position) < self.max_length:
            raise ValueError(f"position must be in [0, {self.max_length}), got {position}")
        outputs = self._runners["decode"](
            tokens=np.asarray(token_id, np.int32).reshape(1, 1),
            input_pos=np.asarray(position, np.int32).reshape(1),
            **state,
        )
        logits, state = self._split(outputs)
        return logits[:, 0], state

    def generate_ids(self, prompt_ids, max_new_tokens, end_id=None, banned_ids=(), choose=None):
        """Continuation of `prompt_ids`: the list of new ids.

        The prompt runs as `run_prompt` runs it (the longest `prefill_N` that
        fits, then one `decode` per further token); then new tokens, each
        picked by `choose(logits)` (default: the most likely), never one of
        `banned_ids`. Stops after `end_id` (not returned), `max_new_tokens`,
        or at `max_length`.

        After the prefill, the state stays in the `decode` signature's own
        input tensors (`BoundDecode`): each step moves one cache row, not
        every layer's whole cache in and out.
        """
        choose = choose or (lambda logits: int(np.argmax(logits)))
        prompt_ids = [int(t) for t in prompt_ids]
        if not prompt_ids:
            raise ValueError("prompt_ids: needs at least one token, got none")
        if self.max_length is not None and len(prompt_ids) > self.max_length:
            raise ValueError(
                f"prompt_ids: {len(prompt_ids)} tokens exceed max_length={self.max_length}"
            )
        bound = self._bound_decode()
        length = longest_prefill(self.prefill_lengths, len(prompt_ids))
        if length:
            logits, state = self.prefill(prompt_ids[:length])
            logits = logits[0, -1]
            bound.load(state)
        else:
            bound.load(self.initial_state())
        for position in range(length, len(prompt_ids)):  # forced prompt tokens
            logits = bound.step(prompt_ids[position], position)
        position = len(prompt_ids)
        banned = np.zeros(self.vocabulary_size, bool)
        banned[list(banned_ids)] = True
        new_ids = []
        limit = self.max_length if self.max_length is not None else float("inf")
        while len(new_ids) < max_new_tokens and position < limit:
            token = choose(np.where(banned, -np.inf, logits))
            if token == end_id:
                break
            new_ids.append(token)
            if len(new_ids) == max_new_tokens or position + 1 >= limit:
                break  # the last token's logits are not needed
            logits = bound.step(token, position)
            position += 1
        return new_ids

    def _bound_decode(self):
        if self._bound is None:
            self._bound = BoundDecode(self.interpreter, self._runners["decode"], self.state_specs,
                                      (self.metadata or {}).get("sequence_length"))
        return self._bound

    def _split(self, outputs):
        logits = outputs.pop("logits")
        return logits, outputs


_KV_CACHE = re.compile(r"^kv_cache_[kv]_\d+$")


class BoundDecode:
    """`decode` steps over a state kept in the signature's own input tensors.

    LiteRT-LM's engine binds each cache output to the same-named input, so
    a step moves no cache at all. The Python API cannot bind buffers; a
    signature runner call copies every state tensor in and every one out
    (2 x layers x 2 caches of `(1, heads, sequence_length, head_dim)`).
    Here the state is written into the `decode` subgraph's input tensors
    once (`load`); after each `step` the cache outputs differ from those
    inputs only in the row the step wrote (position `position` on the time
    axis: 2 for keras_lm's `(1, heads, length, head_dim)`, 1 for an imported
    keras-hub model's `(1, length, heads, head_dim)`), so only that row is
    copied back (through NumPy views of the interpreter's
    tensors, taken afresh each step and never held across `Invoke`). Any
    other state (an LSTM's `h`/`c`) is copied whole: it is small.

    `interpreter` is an `ai_edge_litert` `Interpreter`; `runner` its
    `decode` signature runner; `state_specs` as `LiteRTRunner.state_specs`;
    `cache_length` the cache's positions (the file's `sequence_length`): the
    time axis is the one of that size (a cache whose axes 1 and 2 both have
    it, or an unknown length, is copied whole: slower, still right).
    """

    def __init__(self, interpreter, runner, state_specs, cache_length=None):
        # The interpreter's own wrapper, as its signature runners use it:
        # the public `Interpreter.tensor` reaches only subgraph 0.
        self._wrapper = interpreter._interpreter
        self._subgraph = runner._subgraph_index
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        self._tokens = inputs["tokens"]["index"]
        self._positions = inputs["input_pos"]["index"]
        self._logits = outputs["logits"]["index"]
        self._state = [
            (inputs[name]["index"], outputs[name]["index"],
             _time_axis(shape, cache_length) if _KV_CACHE.match(name) else None)
            for name, (shape, _) in state_specs.items()
        ]
        self._names = list(state_specs)
        self._wrapper.AllocateTensors(self._subgraph)

    def _view(self, index):
        return self._wrapper.tensor(self._wrapper, index, self._subgraph)

    def load(self, state):
        """Writes `state` (`{name: array}`) into the decode inputs."""
        for name, (index, _, _) in zip(self._names, self._state):
            self._view(index)[...] = state[name]

    def step(self, token_id, position):
        """Runs `token_id` at `position`; returns the logits `(vocabulary,)` (a copy)."""
        self._view(self._tokens)[...] = token_id
        self._view(self._positions)[...] = position
        self._wrapper.Invoke(self._subgraph)
        for source, target, axis in self._state:
            if axis is not None:  # the row written at `position` on the time axis
                row = (slice(None),) * axis + (position,)
                self._view(source)[row] = self._view(target)[row]
            else:
                self._view(source)[...] = self._view(target)
        return self._view(self._logits)[0, 0].copy()

    def state(self):
        """The state after the last step: `{name: array}` (copies)."""
        return {name: self._view(index).copy()
                for name, (index, _, _) in zip(self._names, self._state)}


def _time_axis(shape, cache_length):
    """The time axis (1 or 2) of a 4-D cache of `shape`, or None when it is not clear."""
    if len(shape) != 4 or cache_length is None:
        return None
    axes = [axis for axis in (1, 2) if shape[axis] == cache_length]
    return axes[0] if len(axes) == 1 else None


def longest_prefill(prefill_lengths, length):
    """The largest of `prefill_lengths` that is `<= length`; 0 when none fits.

    Example:
    >>> longest_prefill([8, 32], 20), longest_prefill([8, 32], 5)
    (8, 0)
    """
    return max((n for n in prefill_lengths if n <= length), default=0)


def run_prompt(runner, ids):
    """Runs the tokens `ids` as an app does; yields `(logits, state)` per call.

    The longest `prefill_N` that fits runs first, from the zero state (one
    call, `logits` `(N, vocabulary)`); then `decode` at each further position
    (`logits` `(1, vocabulary)`), fed the state of the call before. So the
    rows of all `logits` together are the next-token logits at every
    position of `ids`, and the last `state` follows the whole prompt.

    `runner` is a `LiteRTRunner` or anything with the same `prefill_lengths`,
    `initial_state()`, `prefill(ids)` and `decode(id, state, position)`
    (the int8 calibration drives TensorFlow functions this way).

    Example (not run here: it needs an exported file):

        logits = np.concatenate([rows for rows, _ in run_prompt(runner, ids)])
    """
    length = longest_prefill(runner.prefill_lengths, len(ids))
    if length:
        logits, state = runner.prefill(ids[:length])
        yield logits[0], state
    else:
        state = runner.initial_state()
    for position in range(length, len(ids)):
        logits, state = runner.decode(ids[position], state, position)
        yield logits, state


def choose_token(logits, rng, temperature=1.0, top_k=0, top_p=1.0):
    """Samples one id from `logits` (1-D) in NumPy: what an app's sampler does.

    `temperature <= 0` is greedy; `top_k > 0` keeps the k most likely
    tokens, `top_p < 1` the smallest set holding that probability.

    Example:
    >>> choose_token(np.array([0.0, 5.0, 1.0]), np.random.default_rng(0), temperature=0)
    1
    """
    logits = np.asarray(logits, np.float64)
    if temperature <= 0:
        return int(np.argmax(logits))
    logits = logits / temperature
    if 0 < top_k < logits.size:
        kth = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits < kth, -np.inf, logits)
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    if top_p < 1:
        order = np.argsort(-probabilities)
        # Keep a token while the mass before it is below top_p (the top one always).
        before = np.cumsum(probabilities[order]) - probabilities[order]
        keep = order[before < top_p]
        kept = np.zeros_like(probabilities)
        kept[keep] = probabilities[keep]
        probabilities = kept / kept.sum()
    return int(rng.choice(probabilities.size, p=probabilities))


def generate_text(runner, tokenizer, prompt, max_new_tokens, seed=None, **sampling):
    """`prompt` continued through LiteRT: `<bos>` + prompt, then sampled tokens.

    `sampling` holds `choose_token`'s options (default: greedy).
    """
    rng = np.random.default_rng(seed)
    sampling.setdefault("temperature", 0.0)
    special = tokenizer.special_ids
    new_ids = runner.generate_ids(
        [special["<bos>"]] + tokenizer.encode(prompt),
        max_new_tokens,
        end_id=special["<eos>"],
        # As keras_lm's generate: never <pad> or <bos>, unless that id is <eos> too (GPT-2).
        banned_ids=tuple(special[t] for t in ("<pad>", "<bos>") if special[t] != special["<eos>"]),
        choose=lambda logits: choose_token(logits, rng, **sampling),
    )
    return tokenizer.decode(new_ids)
