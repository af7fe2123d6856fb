"""WordPiece and SentencePiece tokenizers learned from a corpus; normalisation; bits per byte."""

import base64
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.tokenizers.text_sample import count_invalid_utf8, sample_text
from keras_lm.errors import UsageError
from keras_lm.export.json_tokenizer import JsonTokenizer
from keras_lm.models import TransformerLM
from keras_lm.tokenizers import (
    SentencePieceTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
    train_tokenizer,
)
from keras_lm.tokenizers.normalization import normalize_graph, normalize_text
from keras_lm.training import evaluate_files

CODE = '''def fold(values, start=0):
    """Adds the values."""
    total = start
    for value in values:
        total += value  # running sum
    return total


class Counter:
    def __init__(self):
        self.count = 0
'''
PROSE = "The quick brown fox jumps over the lazy dog. Über naïve café: 42 €!\n"
KINDS = {
    "wordpiece": dict(vocabulary_size=400),
    "sentencepiece": dict(vocabulary_size=320),
    "sentencepiece_bpe": dict(vocabulary_size=320, sentencepiece_model_type="bpe"),
    "char": dict(),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("subword")
    paths = []
    for i in range(6):
        path = root / f"doc_{i}.txt"
        path.write_text((CODE + PROSE) * (10 + i), encoding="utf-8")
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def tokenizers(corpus):
    return {
        name: train_tokenizer(name.split("_")[0], corpus, **options)
        for name, options in KINDS.items()
    }


@pytest.mark.parametrize("name", KINDS)
def test_round_trip_restores_text_in_the_alphabet(tokenizers, name):
    tokenizer = tokenizers[name]
    rng = np.random.default_rng(0)
    lines = (CODE + PROSE).splitlines(keepends=True)
    for _ in range(20):  # new texts: corpus lines shuffled and glued, spaces kept
        text = "".join(rng.choice(lines, size=rng.integers(1, 6)))
        ids = tokenizer.encode(text)
        assert tokenizer.decode_text(ids) == text
    assert tokenizer.decode_text(tokenizer.encode("")) == ""


@pytest.mark.parametrize("name", ["wordpiece", "sentencepiece"])
def test_subwords_compress_the_corpus(tokenizers, name):
    ids = tokenizers[name].encode(CODE + PROSE)
    assert len(ids) < 0.75 * len((CODE + PROSE).encode())  # fewer ids than bytes


def test_unseen_characters(tokenizers):
    # SentencePiece spells them in bytes (lossless); WordPiece makes the word <unk>.
    text = "fold 𝄞 ok"
    sp = tokenizers["sentencepiece"]
    assert sp.decode_text(sp.encode(text)) == text
    wp = tokenizers["wordpiece"]
    ids = wp.encode(text).numpy().tolist()
    assert wp.unk_id in ids and wp.decode_text(ids) == "fold \ufffd ok"


@pytest.mark.parametrize("name", KINDS)
def test_special_ids_are_distinct_and_stable_across_save_and_load(tokenizers, name, tmp_path):
    tokenizer = tokenizers[name]
    specials = tokenizer.special_ids
    assert len(set(specials.values())) == len(specials) == 4
    path = str(tmp_path / "tokenizer.json")
    tokenizer.save(path)
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tokenizer)
    assert loaded.special_ids == specials and loaded.vocabulary_size == tokenizer.vocabulary_size
    text = CODE[:120] + PROSE
    assert loaded.encode(text).numpy().tolist() == tokenizer.encode(text).numpy().tolist()
    # No text encodes to a special id (except <unk>).
    ids = set(tokenizer.encode(CODE + PROSE + "<pad><bos><eos>").numpy().tolist())
    assert not ids & {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id}


@pytest.mark.parametrize("name", KINDS)
def test_in_graph_tf_data_eager_and_the_apps_json_agree(tokenizers, name, tmp_path):
    tokenizer = tokenizers[name]
    texts = [CODE[:80], "", PROSE, "  \n\t x_y", "fold(values)"]
    eager = [tokenizer.encode(t).numpy().tolist() for t in texts]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode_batch(batch):
        return tokenizer.encode(batch)

    graph = encode_batch(tf.constant(texts)).to_list()
    from_data = [ids.numpy().tolist() for ids in tf.data.Dataset.from_tensor_slices(texts).map(tokenizer.encode)]
    assert graph == eager == from_data
    path = str(tmp_path / "tokenizer.json")
    tokenizer.save(path)
    app = JsonTokenizer.load(path)  # what the LiteRT runner and apps use: no TensorFlow
    assert [app.encode(t) for t in texts] == eager
    assert [app.decode(ids) for ids in eager] == [tokenizer.decode_text(ids) for ids in eager]


@pytest.mark.parametrize("normalize", ["nfkc", "nfkc_lower"])
def test_normalisation_is_the_same_in_graphs_and_in_python(normalize):
    texts = ["Ｆｕｌｌ ｗｉｄｔｈ", "ﬁne ﬂow", "Straße ÀÉÎ", "x²  ½", "plain", "ΣΑΣ ǅ"]
    graph = [t.decode() for t in normalize_graph(tf.constant(texts), normalize).numpy()]
    assert graph == [normalize_text(t, normalize) for t in texts]
    assert normalize_text("ＡＢ ﬁ", normalize) == ("ab fi" if normalize == "nfkc_lower" else "AB fi")


def test_tokenizers_apply_their_normalisation(corpus, tmp_path):
    tokenizer = train_tokenizer("sentencepiece", corpus, 320, normalize="nfkc_lower")
    assert tokenizer.encode("ＴＨＥ Quick").numpy().tolist() == tokenizer.encode("the quick").numpy().tolist()
    path = str(tmp_path / "tokenizer.json")
    tokenizer.save(path)
    assert load_tokenizer(path).normalize == "nfkc_lower"
    assert JsonTokenizer.load(path).encode("ＴＨＥ Quick") == tokenizer.encode("the quick").numpy().tolist()


def test_vocabulary_sizes_that_cannot_work_are_named(corpus, caplog):
    with pytest.raises(UsageError, match=r"^vocabulary_size=20 is too small for WordPiece .* need \d+"):
        train_tokenizer("wordpiece", corpus, 20)
    with pytest.raises(UsageError, match=r"^vocabulary_size=100 is too small for SentencePiece on this corpus: .* need \d+"):
        train_tokenizer("sentencepiece", corpus, 100)
    with pytest.raises(UsageError, match=r"^vocabulary_size=50000: SentencePiece cannot build .* <= \d+"):
        train_tokenizer("sentencepiece", corpus, 50000)
    with pytest.raises(UsageError, match="^vocabulary_size=4 leaves no room"):
        train_tokenizer("char", corpus, 4)
    with pytest.raises(UsageError, match="^vocabulary_size=300: the byte tokenizer has 259 ids"):
        train_tokenizer("byte", corpus, 300)
    # Larger than the sample allows: WordPiece says what it achieved and goes on.
    with caplog.at_level("WARNING", logger="keras_lm"):
        tokenizer = train_tokenizer("wordpiece", corpus, 5000)
    assert tokenizer.vocabulary_size < 5000
    assert f"gave {tokenizer.vocabulary_size} WordPiece pieces" in caplog.text


def test_a_corpus_without_text_is_refused(tmp_path):
    empty = tmp_path / "blank.txt"
    empty.write_text("")
    for kind in ("wordpiece", "sentencepiece", "char"):
        with pytest.raises(UsageError, match="no text"):
            train_tokenizer(kind, [str(empty)], 300)


def test_corrupt_saved_subword_tokenizers_are_named(tokenizers, tmp_path):
    path = tmp_path / "tokenizer.json"
    tokenizers["sentencepiece"].save(str(path))
    config = json.loads(path.read_text())
    config["proto"] = base64.b64encode(b"not a model").decode()
    path.write_text(json.dumps(config))
    with pytest.raises(UsageError, match="tokenizer.json' is corrupt"):
        load_tokenizer(str(path))
    tokenizers["wordpiece"].save(str(path))
    config = json.loads(path.read_text())
    config["vocabulary"] = config["vocabulary"][4:]  # the specials lost
    path.write_text(json.dumps(config))
    with pytest.raises(UsageError, match="is corrupt"):
        load_tokenizer(str(path))


def test_invalid_utf8_is_replaced_and_counted(tmp_path, corpus):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good text \xff\xfe more \xc3 text\n" * 3)
    report = count_invalid_utf8([bad, *corpus])
    assert report.invalid_sequences == 9 and report.files_with_invalid == [bad]
    assert sample_text([str(bad)], 1 << 20).chunks[0].count("\ufffd") == 9
    tokenizer = train_tokenizer("wordpiece", [str(bad), *corpus], 400)
    ids = tokenizer.encode(bad.read_bytes())  # in-graph: replaced, not a crash
    assert "\ufffd" in tokenizer.decode_text(ids)


def test_sample_spreads_over_the_files_and_is_bounded(tmp_path):
    paths = []
    for i in range(50):
        path = tmp_path / f"{i:02d}.txt"
        path.write_text(f"file {i:02d} " * 2000)
        paths.append(str(path))
    sample = sample_text(paths, max_bytes=100_000, block_bytes=10_000)
    assert sample.bytes_read <= 100_000
    seen = sorted(int(chunk[5:7]) for chunk in sample.chunks)
    assert len(seen) == 10  # ten 10 KB blocks from ten files...
    assert seen[-1] - seen[0] >= 25  # ...spread over the list, not its first files
    assert sample_text(paths, max_bytes=100_000, block_bytes=10_000).chunks == sample.chunks


def test_bits_per_byte_is_the_summed_loss_over_the_bytes(tokenizers, tmp_path):
    """Hand computation on a fixed example: sum of -log p over predicted tokens / bytes / ln 2."""
    tokenizer = tokenizers["wordpiece"]
    text = PROSE + CODE[:200]
    path = tmp_path / "fixed.txt"
    path.write_text(text, encoding="utf-8")
    ids = [tokenizer.bos_id] + tokenizer.encode(text).numpy().tolist() + [tokenizer.eos_id]
    keras.utils.set_random_seed(0)
    # One window holds the whole document, so every prediction is counted.
    model = TransformerLM.from_preset(
        "tiny", vocabulary_size=tokenizer.vocabulary_size, sequence_length=len(ids) - 1,
        pad_id=tokenizer.pad_id,
    )
    logits = np.asarray(model(np.array([ids[:-1]], np.int32)), np.float64)[0]
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    code_length = -sum(log_probs[i, t] for i, t in enumerate(ids[1:]))  # nats
    expected = code_length / len(text.encode("utf-8")) / math.log(2)
    result = evaluate_files(model, tokenizer, [str(path)], batch_size=1)
    assert result["tokens"] == len(ids) - 1
    assert result["bits_per_byte"] == pytest.approx(expected, rel=1e-4)


def test_sentencepiece_model_types_differ_and_are_recorded(tokenizers):
    assert tokenizers["sentencepiece"].model_type == "unigram"
    assert tokenizers["sentencepiece_bpe"].model_type == "bpe"
    assert isinstance(tokenizers["wordpiece"], WordPieceTokenizer)
    assert isinstance(tokenizers["sentencepiece"], SentencePieceTokenizer)
