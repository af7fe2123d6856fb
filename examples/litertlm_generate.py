"""Generate text with Google's LiteRT-LM engine from a `.litertlm` that keras-lm exported.

The engine (`pip install litert-lm-api`, module `litert_lm`) is what Android,
iOS and desktop apps embed; this script uses its Python API on the CPU. The
file holds everything: the TFLite model, the tokenizer, the start and stop
tokens and the prompt template of a fine-tuned run.

    keras-lm export --model_dir=saved_models/quickstart --format=litertlm --quantize=none,int4
    python examples/litertlm_generate.py saved_models/quickstart/litertlm/model_float32.litertlm "def "

--max_new_tokens=N (default 64) bounds each continuation. With --check, the
script also loads the Keras model of the run (two levels above the file)
and prints whether the engine's greedy text equals Keras' (exit code 1 if
not).
"""

import os
import sys
import tempfile

import litert_lm


def generate(path, prompts, max_new_tokens=64):
    """Greedy continuations of `prompts` by the engine (a fresh session each)."""
    greedy = litert_lm.interfaces.SamplerConfig(top_k=1, temperature=0.0)
    # The engine caches packed weights in a file; keep it out of the export directory.
    with tempfile.TemporaryDirectory() as cache:
        engine = litert_lm.Engine(path, litert_lm.interfaces.Backend.CPU(), cache_dir=cache)
        texts = []
        for prompt in prompts:
            # The engine puts the start token <bos> first and the prompt through the
            # file's template (a fine-tuned run's; none for a run trained from scratch),
            # as model.generate does.
            session = engine.create_session(apply_prompt_template=True, sampler_config=greedy,
                                            max_output_tokens=max_new_tokens)
            session.run_prefill([prompt])
            texts.append(session.run_decode().texts[0])
            session.close()
        engine.close()
    return texts


if __name__ == "__main__":
    options = [a for a in sys.argv[1:] if a.startswith("--")]
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    path, prompts = args[0], args[1:] or ["def "]
    max_new_tokens = 64
    for option in options:
        if option.startswith("--max_new_tokens="):
            max_new_tokens = int(option.split("=", 1)[1])
    texts = generate(path, prompts, max_new_tokens)
    for prompt, text in zip(prompts, texts):
        print(f"{prompt}{text}")
    if "--check" in sys.argv:
        import keras_lm

        model = keras_lm.load(os.path.dirname(os.path.dirname(os.path.abspath(path))))
        same = model.generate(prompts, max_new_tokens) == texts
        print("engine == keras (greedy):", same)
        sys.exit(0 if same else 1)
