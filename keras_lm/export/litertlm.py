"""A `.litertlm` file: what Google's LiteRT-LM engine loads and runs.

`write_litertlm(tflite_path, path, tokenizer, ...)` bundles, with
`litert-lm-builder`:

- the `.tflite` file of `keras_lm.export.tflite` (section type
  PREFILL_DECODE): its `prefill_{N}`/`decode` signatures, `tokens`,
  `input_pos`, `kv_cache_k_{i}`/`kv_cache_v_{i}` and `logits` are the names
  the engine's executor reads (it swaps each cache output with the
  same-named input after every call, and computes the causal mask inside
  the model when the signature has no `mask` input, as ours has not);
- the tokenizer: SentencePiece's own model for a `sentencepiece` run, else a
  Hugging Face `tokenizer.json` (`keras_lm.export.hf_tokenizer`, checked to
  give our ids before it is written);
- an `LlmMetadata` record: the generic model type, `<bos>` as start token,
  `<eos>` as stop token, `<pad>` and `<bos>` suppressed (our samplers never
  pick them either), a greedy sampler by default (top-p over the top 1
  token: the only type the engine's CPU sampler implements), the context as the
  maximum number of tokens, and a fine-tuned run's prompt template
  (`keras_lm.prompt_template`) as the user turn's prefix and suffix.

`refusal(model, tokenizer)` says why a model cannot become a `.litertlm`
(None when it can): an LSTM (its state is no key/value cache the engine
can bind, and the engine pads prefill chunks with token 0, which would
advance a recurrence), a Transformer with `smear` or `bigram_hash` (the
previous token's embedding or id is state of the same kind), an id tokenizer (a synthetic task has no text), a
normalization the tokenizer file cannot express.

`engine_greedy(path, texts, max_new_tokens)` runs the file in
`litert_lm.Engine` (CPU) with greedy decoding: the texts it continues
with, as an app gets them. `read_llm_metadata(path)` reads the file's
`LlmMetadata` back.

Example (not run here: it needs an exported file):

    write_litertlm("tflite/model_float32.tflite", "model_float32.litertlm", tokenizer,
                   sequence_length=256)
    engine_greedy("model_float32.litertlm", ["def "], 32)
"""

import contextlib
import io
import os
import tempfile

from keras_lm.errors import UsageError
from keras_lm.export.hf_tokenizer import check_hf_tokenizer, hf_tokenizer, sentencepiece_proto
from keras_lm.io_utils import atomic_path

LITERTLM_DIR = "litertlm"
AUTHOR = "keras_lm"


def litertlm_file_name(variant):
    """`model_{variant}.litertlm` (`variant`: float32, fp16, dynamic_int8, int8, int4)."""
    return f"model_{variant}.litertlm"


def refusal(model, tokenizer):
    """Why `model` with `tokenizer` cannot be a `.litertlm` (one line), or None."""
    from keras_lm.export.schema import ExportSchema

    kind = tokenizer.get_config().get("kind")
    if kind == "id":
        return ("a synthetic task's id tokenizer has no text: LiteRT-LM's engine reads "
                "text through a SentencePiece or Hugging Face tokenizer")
    # Named first: the generic reason below would not say which option to turn off.
    for option, kept in (("smear", "embedding (previous_embedding)"),
                         ("bigram_hash", "id (previous_token)")):
        value = getattr(model, option, None)
        if value:
            setting = "true" if value is True else value
            return (f"a model with {option}={setting} keeps the previous token's {kept} as "
                    "decoding state: LiteRT-LM's engine binds only kv_cache_k_i/kv_cache_v_i, "
                    "and pads its prefill chunks with token 0, which would overwrite it")
    schema = ExportSchema.of(model)
    if not schema.is_kv_cache:
        return (f"a {getattr(model, 'family', type(model).__name__)} model's state "
                f"({', '.join(schema.state_names)}) is no key/value cache: LiteRT-LM's "
                "engine binds only kv_cache_k_i/kv_cache_v_i and pads its prefill chunks "
                "with token 0, which would advance a recurrent state")
    normalize = getattr(tokenizer, "normalize", "none")
    if kind == "sentencepiece" and normalize != "none":
        return (f"a sentencepiece tokenizer with normalize={normalize!r}: the engine runs "
                "the SentencePiece model as it is, so the text would not be normalized")
    if sentencepiece_proto(tokenizer) is None:
        try:
            hf_tokenizer(tokenizer)
        except UsageError as error:
            return str(error).split(": ", 1)[-1]
    return None


def check_expressible(model, tokenizer, argument="formats"):
    """Raises `UsageError` (naming `argument`) when `refusal` finds a reason."""
    reason = refusal(model, tokenizer)
    if reason:
        raise UsageError(f"{argument}: litertlm cannot hold this model: {reason}",
                         argument=argument)


def llm_metadata(tokenizer, sequence_length, prompt_template=None):
    """The `LlmMetadata` proto of the file (see the module docstring)."""
    from litert_lm_builder.runtime.proto import llm_metadata_pb2, sampler_params_pb2

    from keras_lm.prompt_template import PromptTemplate

    metadata = llm_metadata_pb2.LlmMetadata()
    metadata.llm_model_type.generic_model.SetInParent()
    metadata.start_token.token_ids.ids.append(tokenizer.bos_id)
    metadata.stop_tokens.add().token_ids.ids.append(tokenizer.eos_id)
    # As keras_lm's samplers: never `<pad>` or `<bos>`, unless it is also the
    # stop token (an imported GPT-2 or Llama 3 pads with its end token).
    metadata.suppress_tokens.ids.extend(
        dict.fromkeys(i for i in (tokenizer.pad_id, tokenizer.bos_id) if i != tokenizer.eos_id))
    metadata.pad_token.token_ids.ids.append(tokenizer.pad_id)
    metadata.max_num_tokens = int(sequence_length)
    # Greedy as top-p sampling over the k = 1 most likely token: the engine's
    # CPU sampler implements only TOP_P (litert-lm-api 0.18: GREEDY and TOP_K
    # fail with "Sampler type: 3 (1) not implemented yet" at the first decode
    # of a session that takes the file's defaults, and in its Benchmark).
    sampler = metadata.sampler_params
    sampler.type = sampler_params_pb2.SamplerParameters.TOP_P
    sampler.k = 1
    sampler.p = 1.0
    sampler.temperature = 1.0
    template = PromptTemplate(prompt_template)
    if not template.is_identity:
        metadata.prompt_templates.user.prefix = template.prefix
        metadata.prompt_templates.user.suffix = template.suffix
    return metadata


def write_litertlm(tflite_path, path, tokenizer, sequence_length, prompt_template=None,
                   check_texts=()):
    """Writes the `.litertlm` of a `.tflite` file to `path` (atomically); returns its size.

    `check_texts`: more texts the Hugging Face tokenizer must encode as ours.
    """
    from litert_lm_builder import litertlm_builder as builder

    with tempfile.TemporaryDirectory(prefix="keras_lm_litertlm_") as scratch:
        metadata_path = os.path.join(scratch, "llm_metadata.pb")
        with open(metadata_path, "wb") as f:
            f.write(llm_metadata(tokenizer, sequence_length, prompt_template).SerializeToString())
        file = builder.LitertLmFileBuilder()
        file.add_system_metadata(
            builder.Metadata(key="Authors", value=AUTHOR, dtype=builder.DType.STRING))
        file.add_llm_metadata(metadata_path)
        # float32 activations: the engine's CPU default for a text decoder is
        # fp16, which would not give Keras' tokens. (The builder prints this.)
        with contextlib.redirect_stdout(io.StringIO()):
            file.add_tflite_model(os.fspath(tflite_path), builder.TfLiteModelType.PREFILL_DECODE,
                                  prefer_activation_type="fp32")
        proto = sentencepiece_proto(tokenizer)
        if proto is not None:  # a sentencepiece run's, or an imported Gemma's
            model_path = os.path.join(scratch, "tokenizer.model")
            with open(model_path, "wb") as f:
                f.write(proto)
            file.add_sentencepiece_tokenizer(model_path)
        else:
            hf = hf_tokenizer(tokenizer)
            check_hf_tokenizer(hf, tokenizer, check_texts)
            json_path = os.path.join(scratch, "tokenizer.json")
            hf.save(json_path)
            file.add_hf_tokenizer(json_path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                file.build(f)
    return os.path.getsize(path)


def read_llm_metadata(path):
    """The `LlmMetadata` proto a `.litertlm` file holds (as the engine reads it)."""
    from google.protobuf import text_format
    from litert_lm_builder import litertlm_builder as builder
    from litert_lm_builder.runtime.proto import llm_metadata_pb2

    with tempfile.TemporaryDirectory(prefix="keras_lm_litertlm_") as scratch:
        with contextlib.redirect_stdout(io.StringIO()):
            builder.unpack(os.fspath(path), scratch)
        names = [n for n in os.listdir(scratch) if n.startswith("LlmMetadata")]
        if len(names) != 1:
            raise ValueError(f"path: {path} holds {len(names)} LlmMetadata sections, not one")
        with open(os.path.join(scratch, names[0]), encoding="utf-8") as f:
            return text_format.Parse(f.read(), llm_metadata_pb2.LlmMetadata())


def engine_greedy(path, texts, max_new_tokens, num_threads=None, apply_prompt_template=False,
                  file_sampler=False):
    """Greedy continuations of `texts` by LiteRT-LM's engine (CPU), as strings.

    Each text starts a fresh session (the engine puts the start token
    first). `apply_prompt_template`: the engine puts each text through the
    file's user prompt template (a fine-tuned run's), as `model.generate`
    does; else the texts go as they are. `file_sampler`: decode with the
    sampler the file names as its default (greedy), as an app that sets
    none does; else with an explicit greedy sampler.

    The session API applies the template as written; the engine's
    conversation API (`create_conversation`) renders it through a chat
    template that dropped a newline at the start of the suffix (litert-lm-api
    0.18: `"{prompt}\\n"` loses its newline), so apps prefill sessions as here.
    """
    import litert_lm

    backend = litert_lm.interfaces.Backend.CPU(thread_count=num_threads)
    # The engine caches its packed weights in a file named after the model's
    # path, size and mtime; by default beside the model, where a new file of
    # the same size written within the same second would load stale weights.
    with tempfile.TemporaryDirectory(prefix="keras_lm_litertlm_cache_") as cache:
        engine = litert_lm.Engine(os.fspath(path), backend, cache_dir=cache)
        return _greedy(engine, litert_lm, texts, max_new_tokens, apply_prompt_template,
                       file_sampler)


def _greedy(engine, litert_lm, texts, max_new_tokens, apply_prompt_template, file_sampler):
    try:
        outputs = []
        for text in texts:
            session = engine.create_session(
                apply_prompt_template=bool(apply_prompt_template),
                sampler_config=None if file_sampler else litert_lm.interfaces.SamplerConfig(
                    top_k=1, temperature=0.0),
                max_output_tokens=int(max_new_tokens),
            )
            try:
                session.run_prefill([text])
                outputs.append(session.run_decode().texts[0])
            finally:
                session.close()
        return outputs
    finally:
        engine.close()
