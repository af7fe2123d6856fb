import json

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_lm.errors import UsageError
from keras_lm.tokenizers import ByteTokenizer, CharTokenizer, load_tokenizer

BYTE = ByteTokenizer()
CHAR = CharTokenizer(vocabulary=list("abcdefghij é€\n"))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64))
def test_byte_tokenizer_round_trips_any_bytes(data):
    ids = BYTE.encode(tf.constant(data))
    assert ids.numpy().tolist() == list(data)
    assert BYTE.decode(ids).numpy() == data


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_byte_tokenizer_round_trips_any_text(text):
    assert BYTE.decode_text(BYTE.encode(text)) == text


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdefghij é€\n", max_size=40))
def test_char_tokenizer_round_trips_text_in_its_alphabet(text):
    ids = CHAR.encode(text).numpy()
    assert len(ids) == len(text)
    assert CHAR.unk_id not in ids
    assert CHAR.decode_text(ids) == text


def test_char_tokenizer_maps_unseen_and_invalid_utf8_to_unk():
    ids = CHAR.encode(tf.constant(b"a\xffz")).numpy().tolist()
    assert ids[0] != CHAR.unk_id
    assert ids[1:] == [CHAR.unk_id, CHAR.unk_id]


def test_special_ids_are_distinct_and_outside_text():
    for tokenizer in (BYTE, CHAR):
        specials = {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id}
        assert len(specials) == 3
        text_ids = set(tokenizer.encode("abc é").numpy().tolist())
        assert not specials & text_ids
        # Special ids decode to nothing.
        assert tokenizer.decode(list(specials)).numpy() == b""
    assert BYTE.vocabulary_size == 259


@pytest.mark.parametrize("tokenizer", [BYTE, CHAR], ids=["byte", "char"])
def test_in_graph_and_tf_data_agree_with_eager(tokenizer):
    texts = ["abc", "", "é€ja\n", "hij"]
    eager = [tokenizer.encode(t).numpy().tolist() for t in texts]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode_batch(batch):
        return tokenizer.encode(batch)

    graph = encode_batch(tf.constant(texts)).to_list()
    from_data = [
        ids.numpy().tolist()
        for ids in tf.data.Dataset.from_tensor_slices(texts).map(tokenizer.encode)
    ]
    assert graph == eager == from_data
    # A batch of only empty texts (an empty prompt served alone) has no pieces at all.
    assert encode_batch(tf.constant(["", ""])).to_list() == [[], []]

    @tf.function
    def decode_batch(ids):
        return tokenizer.decode(ids)

    decoded = decode_batch(tf.ragged.constant(eager, dtype=tf.int32)).numpy().tolist()
    assert decoded == [t.encode() for t in texts]


def test_char_tokenizer_learns_vocabulary_by_frequency(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("aaaa bbb cc d\n" * 5, encoding="utf-8")
    tokenizer = CharTokenizer.train([str(path)], max_vocabulary_size=4 + 3)
    # The 3 most frequent characters: a, b, and the space (5*3=15 > c's 10).
    assert sorted(tokenizer.vocabulary) == [" ", "a", "b"]
    assert tokenizer.encode("d").numpy().tolist() == [tokenizer.unk_id]


@pytest.mark.parametrize("tokenizer", [BYTE, CHAR], ids=["byte", "char"])
def test_save_and_load_exactly(tmp_path, tokenizer):
    path = str(tmp_path / "tokenizer.json")
    tokenizer.save(path)
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tokenizer)
    assert loaded.special_ids == tokenizer.special_ids
    assert loaded.vocabulary_size == tokenizer.vocabulary_size
    text = "héllo € abc \x00"
    np.testing.assert_array_equal(loaded.encode(text), tokenizer.encode(text))
    assert loaded.token_strings() == tokenizer.token_strings()


def test_load_missing_or_corrupt_tokenizer_names_the_file(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_tokenizer(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="corrupt"):
        load_tokenizer(str(bad))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": "byte", "vocabulary_size": 300, "special_ids": {}}))
    with pytest.raises(UsageError, match="corrupt"):
        load_tokenizer(str(wrong))
