"""The step API and generation: cached == full forward, ragged batches, traces,
seeds, stop strings, streaming, context limits and bad arguments."""

import logging

import keras
import numpy as np
import pytest

from keras_lm.generation import GreedySampler, decoding, generate, stream
from keras_lm.models import LSTMLM, TransformerLM
from keras_lm.tokenizers import ByteTokenizer, CharTokenizer

VOCABULARY = 259
FAMILIES = ["transformer_rotary", "transformer_learned", "lstm"]


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(1)
    return {
        "transformer_rotary": TransformerLM.from_preset("tiny", vocabulary_size=VOCABULARY),
        "transformer_learned": TransformerLM.from_preset(
            "tiny", vocabulary_size=VOCABULARY, position_embedding="learned", tie_embeddings=False
        ),
        "lstm": LSTMLM.from_preset("tiny", vocabulary_size=VOCABULARY, num_layers=2),
    }


@pytest.fixture(scope="module")
def char_setup(tmp_path_factory):
    """A character tokenizer (every id decodes to a whole character) and a model."""
    from conftest import write_corpus

    files = write_corpus(str(tmp_path_factory.mktemp("corpus")), num_files=2)
    tokenizer = CharTokenizer.train(files)
    keras.utils.set_random_seed(2)
    return TransformerLM.from_preset("tiny", vocabulary_size=tokenizer.vocabulary_size), tokenizer


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("prefill_length", [1, 7])
def test_prefill_and_decode_equal_the_full_forward_at_every_position(models, name, prefill_length):
    model = models[name]
    ids = np.random.default_rng(0).integers(0, 256, (2, model.sequence_length)).astype("int32")
    full = model(ids).numpy()
    # A one-token text (one key: no softmax) is the first position of the full forward.
    np.testing.assert_allclose(model(ids[:, :1]).numpy(), full[:, :1], atol=1e-5)
    state = model.initial_state(2, model.sequence_length)
    logits, state = model.prefill(ids[:, :prefill_length], state)
    np.testing.assert_allclose(logits, full[:, :prefill_length], atol=1e-5)
    for position in range(prefill_length, model.sequence_length):
        logits, state = model.decode(ids[:, position], state, position)
        np.testing.assert_allclose(logits, full[:, position], atol=1e-5, err_msg=f"at {position}")


def test_state_shapes_are_static_and_named(models):
    state = models["transformer_rotary"].initial_state(3, 40)
    assert sorted(state) == ["layer_0_key", "layer_0_value", "layer_1_key", "layer_1_value"]
    assert all(t.shape == (3, 2, 40, 16) for t in state.values())
    state = models["lstm"].initial_state(3)
    assert sorted(state) == ["layer_0_c", "layer_0_h", "layer_1_c", "layer_1_h"]
    with pytest.raises(ValueError, match="max_length must be in"):
        models["transformer_rotary"].initial_state(1, 65)


def greedy_without_cache(model, tokenizer, prompt, max_new_tokens):
    """The reference: rerun the whole sequence for every new token."""
    ids = [tokenizer.bos_id] + tokenizer.encode(prompt).numpy().tolist()
    new = []
    for _ in range(max_new_tokens):
        logits = model(np.array([ids], "int32"))[0, -1].numpy()
        logits[[tokenizer.pad_id, tokenizer.bos_id]] = -np.inf
        token = int(np.argmax(logits))
        if token == tokenizer.eos_id:
            break
        ids.append(token)
        new.append(token)
    return new


# The LSTM's reference is slow (30 tokens of full forwards); its cached decoding
# is checked against its forward pass at every position above, and by LiteRT's.
# All with `pytest -m slow` (~30 s each): by default the cached steps are
# compared with the full forward pass at every position, above.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) for n in (
    "transformer_rotary", "transformer_learned", "lstm")])
def test_greedy_tokens_match_generation_without_cache(models, name):
    model, tokenizer = models[name], ByteTokenizer()
    for prompt in ["", "def f(x):"]:
        expected = greedy_without_cache(model, tokenizer, prompt, 30)
        ids = decoding.decode_tokens(
            model, [[tokenizer.bos_id, *tokenizer.encode(prompt).numpy()]], 30,
            GreedySampler(), end_id=tokenizer.eos_id, pad_id=tokenizer.pad_id,
            banned_ids=(tokenizer.pad_id, tokenizer.bos_id),
        )
        assert [t for chunk in ids for t in chunk[0]] == expected


# By default one Transformer; the other families and beam search (whose loops
# compile per shape; it is tested by default below) run with `pytest -m slow`.
# Each row's cached steps are checked against the full forward pass above.
BEAM = dict(sampler="beam", beam_width=3)
RAGGED_CASES = [("transformer_rotary", {})] + [
    pytest.param(name, sampler, marks=pytest.mark.slow)
    for name, sampler in (("lstm", {}), ("transformer_rotary", BEAM), ("transformer_learned", {}),
                          ("transformer_learned", BEAM), ("lstm", BEAM))]


@pytest.mark.parametrize("name, sampler", RAGGED_CASES)
def test_ragged_batch_gives_each_row_its_own_text(models, name, sampler):
    model, tokenizer = models[name], ByteTokenizer()
    prompts = ["import os", "", "class Tokenizer(object):\n    def", "x"]
    together = generate(model, tokenizer, prompts, 20, **sampler)
    alone = [generate(model, tokenizer, p, 20, **sampler) for p in prompts]
    assert together == alone


def test_beam_width_one_is_greedy(models):
    model, tokenizer = models["transformer_rotary"], ByteTokenizer()
    prompts = ["for i in", "while"]
    assert generate(model, tokenizer, prompts, 16, sampler="beam", beam_width=1) == generate(
        model, tokenizer, prompts, 16
    )


def test_beam_search_finds_a_likelier_text_than_greedy(models):
    model, tokenizer = models["lstm"], ByteTokenizer()
    prompt = [tokenizer.bos_id, *tokenizer.encode("abc").numpy()]
    special = dict(end_id=-1, pad_id=tokenizer.pad_id, banned_ids=(tokenizer.pad_id, tokenizer.bos_id))

    def log_likelihood(new):  # of the 12 new tokens after the prompt
        ids = prompt + new
        logits = model(np.array([ids[:-1]], "int32"))[0].numpy()
        logits[:, [tokenizer.pad_id, tokenizer.bos_id]] = -np.inf
        log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        return sum(log_probs[t - 1, ids[t]] for t in range(len(prompt), len(ids)))

    (greedy,) = next(decoding.decode_tokens(model, [prompt], 12, GreedySampler(), **special))
    (beam,) = decoding.beam_search_tokens(model, [prompt], 12, 4, **special)
    assert len(beam) == len(greedy) == 12 and beam != greedy
    assert log_likelihood(beam) > log_likelihood(greedy)


def test_seed_reproduces_sampling(models):
    model, tokenizer = models["transformer_rotary"], ByteTokenizer()
    options = dict(sampler="top_p", top_p=0.95, temperature=1.2)
    first = generate(model, tokenizer, ["a", "b"], 24, seed=5, **options)
    assert generate(model, tokenizer, ["a", "b"], 24, seed=5, **options) == first
    others = {tuple(generate(model, tokenizer, ["a", "b"], 24, seed=s, **options)) for s in range(4)}
    assert len(others) > 1


@pytest.mark.slow  # ~10 s of generation; a retrace costs time, not correctness
def test_repeated_calls_of_one_shape_bucket_do_not_retrace(models):
    model, tokenizer = models["transformer_rotary"], ByteTokenizer()

    def tracing_counts():
        programs = decoding.compiled_programs(model)
        return {key: f.experimental_get_tracing_count() for key, f in programs.items()}

    generate(model, tokenizer, ["first call", "compiles"], 10, sampler="top_k", top_k=5, seed=0)
    before = tracing_counts()
    # Other prompts, lengths, seeds and sizes inside the same buckets.
    generate(model, tokenizer, ["another prompt", "and one"], 10, sampler="top_k", top_k=5, seed=1)
    generate(model, tokenizer, ["third!!!!", "call..."], 7, sampler="top_k", top_k=5)
    assert tracing_counts() == before
    generate(model, tokenizer, ["a new batch size"], 10, sampler="top_k", top_k=5)
    assert sum(tracing_counts().values()) > sum(before.values())  # the counter counts


def test_stop_strings_cut_the_text(char_setup):
    model, tokenizer = char_setup
    text = generate(model, tokenizer, "the ", 40)
    assert len(text) >= 12
    stop = text[8:10]
    expected = text[: text.find(stop)]
    assert generate(model, tokenizer, "the ", 40, stop=stop) == expected
    assert generate(model, tokenizer, "the ", 40, stop=["zzzz-never", stop]) == expected
    assert "".join(stream(model, tokenizer, "the ", 40, stop=stop)) == expected


@pytest.mark.parametrize("options", [dict(), dict(sampler="temperature", temperature=1.0, seed=3)])
def test_stream_yields_the_same_text_as_generate(models, options):
    model, tokenizer = models["lstm"], ByteTokenizer()
    pieces = list(stream(model, tokenizer, "def ", 30, **options))
    assert len(pieces) > 1
    assert "".join(pieces) == generate(model, tokenizer, "def ", 30, **options)


def test_eos_stops_every_row(char_setup):
    model, tokenizer = char_setup
    # gamma=0, beta=1 makes the final features all ones, so with the tied head
    # logits[v] = sum(embedding[v]): <eos> gets the largest, greedy stops at once.
    norm, embedding = model.final_norm, model.token_embedding.embeddings
    saved = [w.numpy() for w in (norm.gamma, norm.beta, embedding)]
    try:
        norm.gamma.assign(np.zeros_like(saved[0]))
        norm.beta.assign(np.ones_like(saved[1]))
        boosted = saved[2].copy()
        boosted[tokenizer.eos_id] = 10.0
        embedding.assign(boosted)
        assert generate(model, tokenizer, ["the", "a lazy"], 20) == ["", ""]
    finally:
        for weight, value in zip((norm.gamma, norm.beta, embedding), saved):
            weight.assign(value)


def test_empty_prompt_starts_a_document(models):
    text = generate(models["lstm"], ByteTokenizer(), "", 10)
    assert isinstance(text, str) and 0 < len(text.encode("utf-8", "surrogatepass")) <= 40


def test_long_prompts_error_or_truncate_from_the_left(models, caplog):
    model, tokenizer = models["transformer_learned"], ByteTokenizer()  # context 64
    prompt = "x" * 60
    with pytest.raises(ValueError, match=r"prompt: 61 tokens \(with <bos>\) \+ max_new_tokens=10 exceed"):
        generate(model, tokenizer, prompt, 10)
    with caplog.at_level(logging.WARNING, logger="keras_lm"):
        text = generate(model, tokenizer, prompt, 10, truncate="left")
    assert "kept its last 54 of 61 tokens" in caplog.text
    # Cutting the prompt is the same as giving the cut prompt (no <bos>).
    ids = [[tokenizer.bos_id, *tokenizer.encode(prompt).numpy()][-54:]]
    expected = decoding.decode_tokens(
        model, ids, 10, GreedySampler(), end_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id, banned_ids=(tokenizer.pad_id, tokenizer.bos_id))
    assert text == tokenizer.decode_text(np.array([t for c in expected for t in c[0]], "int32"))


BAD_ARGUMENTS = [
    (dict(max_new_tokens=0), "max_new_tokens must be an integer > 0, got 0"),
    (dict(max_new_tokens=-5), "max_new_tokens must be an integer > 0, got -5"),
    (dict(max_new_tokens=64), "max_new_tokens must be < the model's context of 64 tokens"),
    (dict(sampler="top_k", top_k=0), "top_k must be an integer > 0, got 0"),
    (dict(sampler="top_k", top_k=260), "top_k must be <= the vocabulary size 259, got 260"),
    (dict(sampler="top_p", top_p=0.0), "top_p must be in (0, 1]"),
    (dict(sampler="top_p", top_p=1.01), "top_p must be in (0, 1]"),
    (dict(sampler="temperature", temperature=-0.5), "temperature must be >= 0"),
    (dict(sampler="nucleus"), "sampler must be one of greedy, temperature, top_k, top_p, beam"),
    (dict(sampler="beam", beam_width=0), "beam_width must be an integer >= 1, got 0"),
    (dict(truncate="right"), "truncate must be None or 'left', got 'right'"),
    (dict(stop=[""]), "stop must be a non-empty string"),
    (dict(seed="one"), "seed must be an integer or None, got 'one'"),
]


@pytest.mark.parametrize("arguments,message", BAD_ARGUMENTS, ids=[m[:40] for _, m in BAD_ARGUMENTS])
def test_bad_arguments_raise_value_error_naming_them(models, arguments, message):
    arguments = {"max_new_tokens": 5, **arguments}
    with pytest.raises(ValueError) as error:
        generate(models["transformer_rotary"], ByteTokenizer(), "hi", **arguments)
    assert message in str(error.value)


def test_model_generate_uses_the_attached_tokenizer(models):
    model = models["lstm"]
    with pytest.raises(ValueError, match="tokenizer: generate needs a tokenizer"):
        model.generate("hi", 5)
    tokenizer = ByteTokenizer()
    model.tokenizer = tokenizer
    try:
        assert model.generate(["hi", "there"], 5) == generate(model, tokenizer, ["hi", "there"], 5)
    finally:
        del model.tokenizer
