"""Our tokenizers as a Hugging Face `tokenizer.json` (what LiteRT-LM's engine reads).

`hf_tokenizer(tokenizer)` builds a `tokenizers.Tokenizer` (the Hugging Face
library) that encodes and decodes as ours does, for the kinds whose rules
it can express:

- `byte`: a BPE model over the 256 byte symbols of the ByteLevel alphabet
  (ids 0-255 = the bytes, as ours), no merges, the ByteLevel pre-tokenizer
  and decoder without their regex, so a text is its UTF-8 bytes;
- `char`: a BPE model over the vocabulary's characters, no merges and no
  pre-tokenizer (the text falls apart into characters), an unknown
  character `<unk>`, decoded by concatenation (`Fuse`);
- `wordpiece`: the WordPiece model (`##` continuation, `<unk>`) after a
  pre-tokenizer that splits as ours does (runs of `[0-9A-Za-z_]`, runs of
  whitespace, any other single character), decoded by concatenation with
  the `##` stripped.

- `keras_hub` with a byte-level BPE vocabulary (an imported GPT-2 or
  Llama 3): keras-hub's own `tokenizers` pipeline for it (vocabulary,
  merges, pre-tokenizer, ByteLevel decoder, its special tokens such as
  `<|endoftext|>` and `<|eot_id|>` with their ids), the one its eager
  `tokenize` runs; `check_hf_tokenizer` proves the ids agree with ours. An imported SentencePiece tokenizer (Gemma) ships its own
  model: `sentencepiece_proto`.

The special tokens (`<pad>`, `<bos>`, `<eos>`, `<unk>`) keep our ids.
`normalize="nfkc"` becomes the NFKC normalizer. `nfkc_lower` is refused:
ours lower-cases with Python's `str.casefold` (`ß` -> `ss`), Hugging Face's
`Lowercase` does not, so the engine would see other ids. SentencePiece runs
ship their own model (`tokenizer.model`) and are not converted here.

`check_hf_tokenizer` encodes and decodes sample texts with both and raises
if an id differs: a `.litertlm` is only written with a tokenizer that
passed it.

Example:
>>> from keras_lm.tokenizers import ByteTokenizer
>>> hf = hf_tokenizer(ByteTokenizer())
>>> hf.encode("é!").ids, hf.token_to_id("<eos>"), hf.decode([195, 169, 33])
([195, 169, 33], 258, 'é!')
"""

from keras_lm.errors import UsageError

# Where ours and Hugging Face's could part: accents, whitespace runs and
# newlines, punctuation, digits inside words, non-Latin scripts, emoji.
CHECK_TEXTS = (
    "ROMEO: é\n  def f(x_1):\treturn x_1 ** 2  # ok?",
    "Ｆｕｌｌ-width ﬁ ligature, ½ and Ω; naïve café.",
    "日本語のテキスト and 😀 emoji\r\n",
)


def hf_tokenizer(tokenizer, argument="tokenizer"):
    """The `tokenizers.Tokenizer` equivalent to `tokenizer` (byte, char, wordpiece).

    Raises `UsageError` (naming `argument`) for a kind or a normalization
    it cannot express.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
    )

    config = tokenizer.get_config()
    kind = config.get("kind", type(tokenizer).__name__)
    normalize = getattr(tokenizer, "normalize", "none")
    if normalize not in ("none", "nfkc"):
        raise UsageError(
            f"{argument}: normalize={normalize!r} cannot be written to a Hugging Face "
            "tokenizer.json (its Lowercase is not Python's casefold: 'ß' stays 'ß'); "
            "only none and nfkc can",
            argument=argument,
        )
    if kind == "keras_hub":
        return _keras_hub_bpe(tokenizer, argument)
    specials = sorted(tokenizer.special_ids.items(), key=lambda item: item[1])
    unk = tokenizer.special_ids.get("<unk>")
    unk_token = "<unk>" if unk is not None else None
    if kind == "byte":
        alphabet = _byte_symbols()
        vocabulary = {alphabet[b]: b for b in range(256)}
        vocabulary.update({token: i for token, i in specials})
        hf = Tokenizer(models.BPE(vocab=vocabulary, merges=[]))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        hf.decoder = decoders.ByteLevel()
    elif kind == "char":
        vocabulary = {token: i for token, i in specials}
        offset = len(specials)
        vocabulary.update({c: offset + i for i, c in enumerate(config["vocabulary"])})
        hf = Tokenizer(models.BPE(vocab=vocabulary, merges=[], unk_token=unk_token))
        hf.decoder = decoders.Fuse()
    elif kind == "wordpiece":
        vocabulary = {piece: i for i, piece in enumerate(config["vocabulary"])}
        hf = Tokenizer(models.WordPiece(vocab=vocabulary, unk_token=unk_token,
                                        continuing_subword_prefix="##",
                                        max_input_chars_per_word=200))
        hf.pre_tokenizer = pre_tokenizers.Split(
            Regex(r"[0-9A-Za-z_]+|[ \t\n\r\f]+|[^0-9A-Za-z_ \t\n\r\f]"), behavior="isolated"
        )
        hf.decoder = decoders.Sequence([decoders.Replace(Regex("^##"), ""), decoders.Fuse()])
    else:
        raise UsageError(
            f"{argument}: a {kind!r} tokenizer cannot be written as a Hugging Face "
            "tokenizer.json (byte, char and wordpiece can; sentencepiece ships its model)",
            argument=argument,
        )
    if normalize == "nfkc":
        hf.normalizer = normalizers.NFKC()
    hf.add_special_tokens([AddedToken(token, special=True) for token, _ in specials])
    return hf


def sentencepiece_proto(tokenizer):
    """The SentencePiece model (bytes) of a `sentencepiece` or imported Gemma tokenizer, or None."""
    kind = tokenizer.get_config().get("kind")
    if kind == "sentencepiece":
        return tokenizer.proto
    if kind == "keras_hub":
        return getattr(tokenizer.hub_tokenizer, "proto", None)
    return None


def _keras_hub_bpe(tokenizer, argument):
    """The `tokenizers.Tokenizer` of an imported byte-level BPE tokenizer (GPT-2, Llama 3)."""
    from tokenizers import Tokenizer

    hub = tokenizer.hub_tokenizer
    if not hasattr(hub, "_maybe_initialized_tokenizers"):
        raise UsageError(
            f"{argument}: a keras-hub {type(hub).__name__} is neither byte-level BPE nor "
            "SentencePiece: it cannot be written for LiteRT-LM's engine",
            argument=argument,
        )
    # keras-hub's own `tokenizers` pipeline, copied: the one its eager
    # `tokenize` runs, which `HubTokenizer` aligned with its TensorFlow path
    # (keras_lm.compat.align_keras_hub_bpe), so the engine gives the ids
    # that generate, tf.data and the SavedModel give.
    hub._maybe_initialized_tokenizers()
    return Tokenizer.from_str(hub._tokenizer.to_str())


def check_hf_tokenizer(hf, tokenizer, texts=()):
    """Raises `ValueError` unless `hf` encodes and decodes `texts` (and
    `CHECK_TEXTS`) to the same ids and text as `tokenizer`."""
    import numpy as np

    for text in (*CHECK_TEXTS, *texts):
        ours = [int(i) for i in np.asarray(tokenizer.encode(text))]
        theirs = hf.encode(text, add_special_tokens=False).ids
        if ours != theirs:
            raise ValueError(
                f"tokenizer.json encodes {text[:40]!r} as {theirs[:12]}..., ours as {ours[:12]}..."
            )
        # Without the special ids: ours decodes <unk> as U+FFFD, theirs skips it.
        plain = [i for i in ours if i not in set(tokenizer.special_ids.values())]
        decoded = hf.decode(plain, skip_special_tokens=True)
        if decoded != tokenizer.decode_text(np.asarray(plain, np.int32)):
            raise ValueError(f"tokenizer.json decodes {text[:40]!r} as {decoded[:40]!r}")


def _byte_symbols():
    """`{byte: character}`: the printable symbol ByteLevel (GPT-2) gives each byte."""
    from tokenizers import pre_tokenizers

    # The same table the ByteLevel pre-tokenizer uses: printable bytes map to
    # themselves, the others to 256 + their rank.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    assert set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    return table
