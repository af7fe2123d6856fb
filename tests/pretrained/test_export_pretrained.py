"""Imported keras-hub models on the phone: TFLite with the KV cache and `.litertlm` (issue 32).

Each family's tiny random preset (conftest's `pretrained_runs`) is exported
through keras_lm's own step API; the greedy text of the `.tflite` file (our
LiteRT runner) and of the `.litertlm` file (LiteRT-LM's engine, CPU) must
equal the Keras model's for 3 prompts x 32 new tokens. The prompts and
continuations run past Gemma 3's sliding window (8 positions), so its local
layers' mask is checked where it matters. GPT-2 runs in the default suite;
Gemma 3 and Llama 3 (and int4) are `slow`.
"""

import shutil

import numpy as np
import pytest

# Three prompts of different lengths: shorter than the prefill (decode only
# after <bos>), about one prefill, and longer than one (prefill + decodes).
PROMPTS = ("def ", "import json\nclass Decoder:", "    def encode(self, obj):\n        return ")
NEW_TOKENS = 32
PREFILL_LENGTHS = (8,)
# How much `sharpen` scales the embedding (and so the logits).
SHARPEN = 30.0


def export_family(pretrained_runs, tmp_path_factory, family, quantize=("none",)):
    """A copy of `family`'s imported run exported to TFLite and `.litertlm` (`--verify`)."""
    import keras_lm

    run_dir = tmp_path_factory.mktemp(f"export_{family}") / "run"
    shutil.copytree(pretrained_runs[family], run_dir)
    sharpen(run_dir)
    report = keras_lm.Run(str(run_dir)).export(
        formats=["tflite", "litertlm"], quantize=list(quantize),
        prefill_lengths=list(PREFILL_LENGTHS), verify=True)
    return run_dir, report


def sharpen(run_dir, factor=SHARPEN):
    """Scales the run's token embedding (and head) by `factor`, saved in place.

    A random tiny preset's logits are nearly uniform (GPT-2's initial
    weights give a top-2 gap near float32's rounding of the logits), so a
    1e-7 difference between two correct runtimes can flip a greedy token and
    the rest of the text with it. Larger logits make each choice decisive;
    the graph is the same.
    """
    import keras_lm

    model = keras_lm.load(str(run_dir))
    for weight in model.token_embedding.weights:
        weight.assign(weight * factor)
    model.save(str(run_dir / "model.keras"))


def tflite_greedy(path, model, tokenizer, prompts, new_tokens):
    """Greedy texts of a `.tflite` file, run by keras_lm's LiteRT runner as an app does."""
    from keras_lm.export.litert_runner import LiteRTRunner

    runner = LiteRTRunner(str(path))
    banned = tuple(i for i in (tokenizer.pad_id, tokenizer.bos_id) if i != tokenizer.eos_id)
    texts = []
    for prompt in prompts:
        ids = [tokenizer.bos_id] + [int(i) for i in np.asarray(tokenizer.encode(prompt))]
        new = runner.generate_ids(ids, new_tokens, end_id=tokenizer.eos_id, banned_ids=banned)
        texts.append(tokenizer.decode_text(np.asarray(
            [i for i in new if i != tokenizer.eos_id], np.int32)))
    return texts


def check_family(run_dir, report):
    """The three formats agree: Keras, the `.tflite` file and the engine's `.litertlm`."""
    import keras_lm
    from keras_lm.export.litertlm import engine_greedy, read_llm_metadata
    from keras_lm.prompt_template import PromptTemplate

    assert report["failures"] == []
    model = keras_lm.load(str(run_dir))
    tokenizer = model.tokenizer
    expected = model.generate(list(PROMPTS), NEW_TOKENS)
    assert any(expected), "the Keras model wrote nothing: the comparison would be empty"
    # The run's prompt template (if any) as generate applies it: by the app
    # for the .tflite file, by the engine from the .litertlm's metadata.
    template = PromptTemplate(getattr(tokenizer, "prompt_template", None))
    tflite = run_dir / "tflite" / "model_float32.tflite"
    templated = [template.apply(p) for p in PROMPTS]
    assert tflite_greedy(tflite, model, tokenizer, templated, NEW_TOKENS) == expected
    litertlm = run_dir / "litertlm" / "model_float32.litertlm"
    assert engine_greedy(litertlm, PROMPTS, NEW_TOKENS, apply_prompt_template=True) == expected
    # The cache the engine binds: per layer (1, kv_heads, length, head_dim).
    state = {e["name"]: e["shape"] for e in report["state"]}
    assert state["kv_cache_k_0"] == [1, model.kv_heads, model.sequence_length, model.head_dim]
    assert len(state) == 2 * model.num_layers
    metadata = read_llm_metadata(litertlm)
    assert list(metadata.start_token.token_ids.ids) == [tokenizer.bos_id]
    assert list(metadata.stop_tokens[0].token_ids.ids) == [tokenizer.eos_id]
    assert tokenizer.eos_id not in set(metadata.suppress_tokens.ids)
    return model


def test_gpt2_exports_and_the_engine_writes_keras_text(pretrained_runs, tmp_path_factory):
    run_dir, report = export_family(pretrained_runs, tmp_path_factory, "gpt2")
    check_family(run_dir, report)
    # GPT-2's byte-level BPE travels as keras-hub's own tokenizer.json pipeline.
    operators = report["files"]["float32"]["operators"]
    assert "DYNAMIC_UPDATE_SLICE" in operators  # the cache write, a builtin
    # keras-hub's stacked (batch, 2, length, heads, head_dim) cache is folded
    # away (`tflite_rewrites.fold_slices_of_packs`): no operator writes a 5-D tensor.
    assert max_output_rank(run_dir / "tflite" / "model_float32.tflite") == 4


def max_output_rank(path):
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(path.read_bytes(), 0)
    ranks = []
    for s in range(root.SubgraphsLength()):
        graph = root.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            ranks += [graph.Tensors(op.Outputs(i)).ShapeLength() for i in range(op.OutputsLength())]
    return max(ranks)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gemma3", "llama3"])
def test_family_exports_and_the_engine_writes_keras_text(pretrained_runs, tmp_path_factory,
                                                         family):
    run_dir, report = export_family(pretrained_runs, tmp_path_factory, family)
    model = check_family(run_dir, report)
    if family == "gemma3":  # SentencePiece: the model itself, beside tokenizer.json
        assert (run_dir / "tflite" / "tokenizer.model").read_bytes() == \
            model.tokenizer.hub_tokenizer.proto


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gemma3", "llama3"])
def test_int4_block_32_keeps_the_top_token(pretrained_runs, tmp_path_factory, family):
    """int4 (block 32) against float32 on the run's validation windows.

    Random tiny presets have near-uniform logits, so perplexity barely moves
    and greedy text flips on tiny differences; what int4 must keep is the
    top token at most positions. Bound: >= 0.5 top-1 agreement with Keras
    on the run's 64 validation windows (measured: Gemma 3 1.00, Llama 3
    0.71, perplexity +2.8%; widths of 32-64 inputs leave one or two blocks per
    output, so little for blocks to save). A broken quantization (a wrong
    scale, a transposed block, a dropped weight) falls towards chance,
    1/vocabulary < 0.01.
    """
    run_dir, report = export_family(pretrained_runs, tmp_path_factory, family,
                                    quantize=("none", "int4"))
    int4 = report["files"]["int4"]
    assert int4["int4"]["granularity"] == "BLOCKWISE_32"
    assert int4["int4"]["int4_weights"]
    agreement = int4["parity"]["top1_agreement"]
    print(f"{family} int4 top-1 agreement {agreement:.3f}, "
          f"perplexity change {int4['parity']['perplexity_change']:+.4f}")
    assert agreement >= 0.5, agreement
    assert abs(int4["parity"]["perplexity_change"]) <= 0.05
    assert (run_dir / "litertlm" / "model_int4.litertlm").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt2", "gemma3"])
def test_int8_calibrates_an_imported_model(pretrained_runs, tmp_path_factory, family):
    """int8 (calibrated on the run's own text) against float32, on the sharpened tiny preset.

    The export picks full int8 or int8 matmuls by top-1 agreement on its
    calibration texts (`keras_lm.export.tflite`); the choice must keep the
    top token at most of the run's validation positions (bound 0.8).
    Measured: GPT-2 full int8, top-1 1.000, perplexity -1.2%; Gemma 3 full
    int8 (its DIV kept float, `INT8_FLOAT_OPS`), top-1 1.000 but perplexity
    +24%: the choice looks at the top token only, so Gemma 3's perplexity
    is printed, not bounded (a known gap, see docs/deployment.md).
    """
    run_dir, report = export_family(pretrained_runs, tmp_path_factory, family,
                                    quantize=("none", "int8"))
    int8 = report["files"]["int8"]
    print(f"{family} int8 {int8['int8_mode']}: top-1 {int8['parity']['top1_agreement']:.3f}, "
          f"perplexity change {int8['parity']['perplexity_change']:+.4f}")
    assert int8["int8_mode"] in ("full", "matmuls")
    assert int8["parity"]["top1_agreement"] >= 0.8
    if family == "gpt2":
        assert abs(int8["parity"]["perplexity_change"]) <= 0.05
    assert (run_dir / "litertlm" / "model_int8.litertlm").is_file()


# Prompts whose whitespace runs keras-hub 0.32 tokenized unlike its graph path
# before `compat.align_keras_hub_bpe` (the SavedModel tokenizes in a graph).
SPACED_PROMPTS = ["x = 2  # ok\n\n    y", "import json\nclass Foo:\n    "]
SERVE_SAVED_MODEL = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the byte-level BPE's in-graph split ops
served = tf.saved_model.load(sys.argv[1])
text = served.signatures["serving_default"](
    prompts=tf.constant(json.loads(sys.argv[2])), max_new_tokens=tf.constant(int(sys.argv[3])))["text"]
print(json.dumps([t.decode("utf-8", "replace") for t in text.numpy()]))
"""


@pytest.mark.slow  # 42 s, the longest default test (exports, then a fresh TensorFlow process)
def test_gpt2_saved_model_in_a_fresh_process_writes_keras_text(pretrained_runs, tmp_path_factory):
    import json
    import subprocess
    import sys

    import keras_lm

    run_dir = tmp_path_factory.mktemp("saved_gpt2") / "run"
    shutil.copytree(pretrained_runs["gpt2"], run_dir)
    sharpen(run_dir)
    report = keras_lm.Run(str(run_dir)).export(formats=["saved_model"], verify=True)
    assert report["failures"] == []
    expected = keras_lm.load(str(run_dir)).generate(SPACED_PROMPTS, NEW_TOKENS)
    served = subprocess.run(
        [sys.executable, "-c", SERVE_SAVED_MODEL, str(run_dir / "saved_model"),
         json.dumps(SPACED_PROMPTS), str(NEW_TOKENS)],
        capture_output=True, text=True, check=True)
    assert json.loads(served.stdout.strip().splitlines()[-1]) == expected
