"""An imported keras-hub model on the phone: file sizes per variant and engine decode speed.

Imports a keras-hub preset into a keras_lm run, exports it with
`Run.export(formats=["tflite", "litertlm"], ...)` (the same path as
`keras-lm export --format=tflite,litertlm`), then measures, at batch 1 and
greedy, new tokens per second (the prompt's prefill excluded, best of
`--repeats` after a warm-up):

- LiteRT-LM's engine (`litert_lm.Engine`, CPU) on each `.litertlm` variant;
- keras-hub's own `generate`, compiled with `jit_compile=True`;
- keras_lm's `generate` on the same model.

Models: a tiny random preset of `--family` (the largest practical tiny one is
`--family=gemma3 --scale=4`), or `--gpt2_small`: GPT-2 small's shape
(12 layers, 12 heads, 768 wide, 50,257 tokens, 124M parameters) built from
its config with random weights (decode speed does not depend on the
weights; nothing is downloaded), with a byte-level BPE tokenizer padded to
GPT-2's vocabulary size.

    python benchmarks/pretrained_export.py --gpt2_small --sequence_length=256   # the record
    python benchmarks/pretrained_export.py --family=gemma3 --scale=4
    python benchmarks/pretrained_export.py --family=gpt2 --smoke         # seconds: proves it runs

Prints one JSON line per model. Run it on an idle machine for the record.
"""

import argparse
import json
import os
import tempfile
import time

# The same best-of-N rate as the generate benchmark (this folder is on sys.path when run).
from pretrained_generate import tokens_per_second

PROMPT = "def encode(self, o):\n    "


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="gemma3", help="gpt2, gemma3 or llama3 (tiny)")
    parser.add_argument("--scale", type=int, default=1,
                        help="widen the tiny preset: hidden and MLP widths x scale")
    parser.add_argument("--gpt2_small", action="store_true", help="GPT-2 small's shape, random")
    parser.add_argument("--sequence_length", type=int, default=None,
                        help="the exported context (cache length); default: the preset's")
    parser.add_argument("--quantize", default="none,fp16,dynamic_int8,int4")
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="float32 only, 8 tokens, 1 repeat")
    args = parser.parse_args()
    if args.smoke:
        args.quantize, args.new_tokens, args.repeats = "none", 8, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = tempfile.mkdtemp(prefix="pretrained_export_")
    hub = gpt2_small() if args.gpt2_small else scaled_tiny(args.family, args.scale)
    preset = os.path.join(work, "preset")
    hub.save_to_preset(preset)
    print(json.dumps(measure(hub, preset, work, args)))


def measure(hub, preset, work, args):
    """Exports the preset's import and times the three decoders; returns the figures."""
    import keras_lm

    run_dir = keras_lm.import_preset(preset, os.path.join(work, "run"),
                                     sequence_length=args.sequence_length)
    run = keras_lm.Run(run_dir)
    quantize = args.quantize.split(",")
    report = run.export(formats=["tflite", "litertlm"], quantize=quantize,
                        prefill_lengths=[8, 32])
    figures = {"model": "gpt2_small" if args.gpt2_small else f"{args.family}x{args.scale}",
               "parameters": run.model.parameter_count(),
               "sequence_length": run.model.sequence_length, "new_tokens": args.new_tokens,
               "variants": {}}
    for variant, entry in report["files"].items():
        path = os.path.join(run_dir, entry["litertlm"]["file"])
        figures["variants"][variant] = {
            "tflite_bytes": entry["size_bytes"], "litertlm_bytes": entry["litertlm"]["size_bytes"],
            "engine_decode_tokens_per_s": enginetokens_per_second(
                path, run.tokenizer, args.new_tokens, args.repeats),
        }
    prompts = [PROMPT]
    length = 1 + len(run.tokenizer.encode(PROMPT))
    hub.compile(sampler="greedy", jit_compile=True)
    figures["keras_hub_xla_tokens_per_s"] = tokens_per_second(
        lambda: hub.generate(prompts, max_length=length + args.new_tokens, stop_token_ids=None),
        args.new_tokens, args.repeats)
    figures["keras_lm_tokens_per_s"] = tokens_per_second(
        lambda: run.model.generate(prompts, args.new_tokens), args.new_tokens, args.repeats)
    return figures


def enginetokens_per_second(path, tokenizer, new_tokens, repeats):
    """Greedy decode tokens/s of a `.litertlm` in LiteRT-LM's engine (prefill not timed).

    The tokens are counted by encoding the text the engine returns (it may
    stop early at the stop token; the count is what it wrote).
    """
    import litert_lm

    backend = litert_lm.interfaces.Backend.CPU()
    with tempfile.TemporaryDirectory(prefix="engine_cache_") as cache:
        engine = litert_lm.Engine(os.fspath(path), backend, cache_dir=cache)
        try:
            best = 0.0
            for _ in range(repeats + 1):  # the first call warms up
                session = engine.create_session(
                    apply_prompt_template=False, max_output_tokens=new_tokens,
                    sampler_config=litert_lm.interfaces.SamplerConfig(top_k=1, temperature=0.0))
                try:
                    session.run_prefill([PROMPT])
                    start = time.perf_counter()
                    text = session.run_decode().texts[0]
                    elapsed = time.perf_counter() - start
                finally:
                    session.close()
                tokens = max(1, len(tokenizer.encode(text)))
                best = max(best, tokens / elapsed)
            return best
        finally:
            engine.close()


def scaled_tiny(family, scale):
    """The tiny preset of `family`, its hidden and MLP widths times `scale`."""
    from keras_lm.pretrained.tiny_presets import tiny_causal_lm

    causal_lm = tiny_causal_lm(family)
    if scale == 1:
        return causal_lm
    config = causal_lm.backbone.get_config()
    config["hidden_dim"] *= scale
    config["intermediate_dim"] *= scale
    if "head_dim" in config:
        config["head_dim"] *= scale
    backbone = type(causal_lm.backbone).from_config(config)
    return type(causal_lm)(backbone=backbone, preprocessor=causal_lm.preprocessor)


def gpt2_small():
    """A GPT-2 small-shaped `GPT2CausalLM` (124M parameters), random, offline."""
    import keras_hub

    from keras_lm.pretrained.tiny_presets import byte_level_vocabulary

    vocabulary, merges = byte_level_vocabulary(["<|endoftext|>"])
    for i in range(len(vocabulary), 50257):  # GPT-2's vocabulary size: the head's real cost
        vocabulary[f"<|unused_{i}|>"] = i
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary, merges)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=50257, num_layers=12, num_heads=12, hidden_dim=768,
        intermediate_dim=3072, dropout=0.0, max_sequence_length=1024)
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=1024)
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor)


if __name__ == "__main__":
    main()
