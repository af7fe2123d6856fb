"""Tiny random keras-hub causal LMs written as presets, offline: for tests and benchmarks.

Each builder makes a keras-hub `CausalLM` of one family with a few layers,
small widths and random weights, with a real tokenizer of that family (a
byte-level BPE vocabulary with merges for GPT-2 and Llama 3, a SentencePiece
model for Gemma 3), and writes it with `save_to_preset`. The shapes keep
each family's details: GPT-2's learned positions and tied head; Gemma 3's
embedding scale, QK-norm, five sliding-window layers (window 8) then a
global one with their two rotary bases; Llama 3's grouped-query attention,
rotary base 500,000 and untied head; Qwen 3's QK-norm, grouped-query
attention and tokenizer without a start token. Nothing is downloaded.

Example (a few seconds):
>>> import tempfile
>>> path = write_tiny_preset("gpt2", tempfile.mkdtemp())
>>> sorted(os.listdir(path))[:2]
['assets', 'config.json']
"""

import io
import os

FAMILIES = ("gpt2", "gemma3", "llama3", "qwen3")
# Merges of the tiny byte-level vocabularies (each a pair of existing tokens).
_MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"),
           ("o", "n"), ("Ġ", "s"), ("r", "e"), ("Ġ", "i"), ("e", "s"), ("a", "t"),
           ("Ġ", "d"), ("e", "f"), ("Ġd", "ef"), ("Ġ", "c"), ("o", "r"), ("e", "n"),
           ("Ġ", "f"), ("Ġ", "o"), ("Ġ", "r"), ("Ġr", "e"), ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"),
           ("Ċ", "ĠĠĠĠ"), ("Ġ", "p"), ("Ġi", "n"), ("Ġa", "n"), ("Ġan", "d")]
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                   "<|end_header_id|>", "<|eot_id|>"]
QWEN3_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SEQUENCE_LENGTH = 128


def byte_level_vocabulary(specials):
    """`(vocabulary, merges)`: the 256 byte symbols, the merged tokens, then `specials`."""
    from keras_lm.tokenizers.byte_level import bytes_to_unicode

    tokens = list(bytes_to_unicode().values()) + ["".join(pair) for pair in _MERGES]
    vocabulary = {token: i for i, token in enumerate(dict.fromkeys(tokens + specials))}
    return vocabulary, [" ".join(pair) for pair in _MERGES]


def gemma_proto(vocabulary_size=400):
    """A SentencePiece BPE model with Gemma's ids (`<pad> <eos> <bos> <unk>` as 0-3),
    `<start_of_turn>`/`<end_of_turn>` and byte fallback, trained on some of Python's
    own source (the same text on every machine with this Python)."""
    import inspect
    import json

    import sentencepiece

    text = inspect.getsource(json.decoder) + inspect.getsource(json.encoder)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text.splitlines()), model_writer=model,
        vocab_size=vocabulary_size, model_type="bpe", byte_fallback=True,
        character_coverage=1.0, add_dummy_prefix=False, normalization_rule_name="identity",
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
        num_threads=1, minloglevel=2,
    )
    return model.getvalue()


def tiny_causal_lm(family, seed=0):
    """A keras-hub `CausalLM` of `family` (`gpt2`, `gemma3`, `llama3`, `qwen3`), random and
    tiny."""
    import keras
    import keras_hub

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    keras.utils.set_random_seed(seed)
    if family == "gpt2":
        tokenizer = keras_hub.models.GPT2Tokenizer(*byte_level_vocabulary(["<|endoftext|>"]))
        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2,
            hidden_dim=32, intermediate_dim=64, dropout=0.0, max_sequence_length=SEQUENCE_LENGTH)
        preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
            tokenizer, sequence_length=SEQUENCE_LENGTH)
        return keras_hub.models.GPT2CausalLM(backbone, preprocessor)
    if family == "gemma3":
        tokenizer = keras_hub.models.Gemma3Tokenizer(gemma_proto(), has_vision_tokens=False)
        backbone = keras_hub.models.Gemma3Backbone(
            vocabulary_size=tokenizer.vocabulary_size(), image_size=16, num_layers=6,
            num_query_heads=2, num_key_value_heads=1, hidden_dim=32, intermediate_dim=64,
            head_dim=16, use_query_key_norm=True, use_post_ffw_norm=True,
            use_post_attention_norm=True, use_sliding_window_attention=True,
            sliding_window_size=8, global_rope_scaling_factor=8.0, vision_encoder=None)
        preprocessor = keras_hub.models.Gemma3CausalLMPreprocessor(
            tokenizer, sequence_length=SEQUENCE_LENGTH)
        return keras_hub.models.Gemma3CausalLM(backbone=backbone, preprocessor=preprocessor)
    if family == "qwen3":
        tokenizer = keras_hub.models.Qwen3Tokenizer(*byte_level_vocabulary(QWEN3_SPECIALS))
        backbone = keras_hub.models.Qwen3Backbone(
            vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_query_heads=4,
            num_key_value_heads=2, head_dim=8, hidden_dim=32, intermediate_dim=64)
        preprocessor = keras_hub.models.Qwen3CausalLMPreprocessor(
            tokenizer, sequence_length=SEQUENCE_LENGTH)
        return keras_hub.models.Qwen3CausalLM(backbone, preprocessor)
    tokenizer = keras_hub.models.Llama3Tokenizer(*byte_level_vocabulary(LLAMA3_SPECIALS))
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_query_heads=4,
        num_key_value_heads=2, hidden_dim=32, intermediate_dim=64,
        rope_max_wavelength=500_000, tie_word_embeddings=False)
    preprocessor = keras_hub.models.Llama3CausalLMPreprocessor(
        tokenizer, sequence_length=SEQUENCE_LENGTH)
    return keras_hub.models.Llama3CausalLM(backbone, preprocessor)


def write_tiny_preset(family, directory, seed=0):
    """Writes `tiny_causal_lm(family, seed)` as a keras-hub preset in `directory/<family>`;
    returns that path."""
    path = os.path.join(directory, family)
    tiny_causal_lm(family, seed).save_to_preset(path)
    return path


def write_tiny_transformers_checkpoint(family, directory, seed=0):
    """Writes a tiny `family` model as a Hugging Face checkpoint (`config.json` with
    `model_type`, safetensors, tokenizer files) in `directory/hf_<family>`; returns it."""
    path = os.path.join(directory, f"hf_{family}")
    tiny_causal_lm(family, seed).export_to_transformers(path)
    return path
