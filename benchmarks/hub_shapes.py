"""Random keras-hub causal LMs of the benchmarks' shapes, built offline from their configs."""


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
