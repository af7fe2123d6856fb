"""Synthetic tasks: each definition checked by independent code, and bad parameters."""

import numpy as np
import pytest

from keras_lm.data.synthetic import Task, task_dataset, task_tokenizer, training_pairs
from keras_lm.errors import UsageError


def sample(task, batch_size=16, seed=0):
    return task.sample(np.random.default_rng(seed), batch_size)


def full_sequences(batch):
    """Tokens 0..L of each row, rebuilt from inputs and targets."""
    assert np.array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
    return np.concatenate([batch["inputs"], batch["targets"][:, -1:]], axis=1)


def test_induction_is_a_repeated_block_and_answers_are_the_repeats():
    task = Task("induction", sequence_length=48, vocabulary_size=32,
                induction_min_length=5, induction_max_length=20)
    batch = sample(task, 64)
    periods = set()
    for row, tokens in enumerate(full_sequences(batch)):
        answer = batch["answer_group"][row] > 0
        # The block length is the row's smallest period in [5, 20] (a shorter
        # one within a random block of 32 ids is vanishingly rare). A target
        # is an answer exactly when its token index (t + 1) is past the first block.
        length = next(b for b in range(5, 21) if np.array_equal(tokens[b:], tokens[:-b]))
        periods.add(length)
        assert np.array_equal(answer, np.arange(1, 49) >= length)
        assert tokens.max() < 32 and tokens.min() >= 0
    assert len(periods) > 5  # the block length varies between sequences


@pytest.mark.parametrize("show_answers", [False, True])
def test_mqar_follows_zoology(show_answers):
    L, V, n = 64, 128, 8
    task = Task("mqar", sequence_length=L, vocabulary_size=V, mqar_num_pairs=n,
                mqar_show_answers=show_answers)
    batch = sample(task, 32)
    inputs, targets = batch["inputs"], batch["targets"]
    hidden = 0
    for row in range(32):
        keys, values = inputs[row, 0:2 * n:2], inputs[row, 1:2 * n:2]
        assert len(set(keys)) == n and all(1 <= k < V // 2 for k in keys)
        assert len(set(values)) == n and all(V // 2 <= v < V for v in values)
        mapping = dict(zip(keys, values))
        answers = np.nonzero(batch["answer_group"][row])[0]  # target indices
        assert len(answers) == n
        # Numbered in the order of the queries in the text.
        assert batch["answer_group"][row, answers].tolist() == list(range(1, n + 1))
        queried = []
        for t in answers:
            key, value = inputs[row, t], targets[row, t]  # the query, its answer
            assert t >= 2 * n and (t - 2 * n) % 2 == 0  # an even offset after the pairs
            assert mapping[key] == value
            queried.append(key)
            if t + 1 < L:  # the answer as the next input: shown, or filler (Zoology)
                hidden += inputs[row, t + 1] != value
                assert show_answers <= (inputs[row, t + 1] == value)
        assert sorted(queried) == sorted(keys)  # each key queried exactly once
    if not show_answers:
        assert hidden > 0.9 * 32 * n  # filler: equal to the answer by chance only
    else:
        full_sequences(batch)  # inputs and targets are one text shifted by one
    # Answer positions only: non-answer targets are left out by training_pairs.
    ds = training_pairs(task_dataset(task, 4), task, pad_id=V)
    _, targets = next(iter(ds))
    assert int(np.sum(targets.numpy() != V)) == 4 * n


@pytest.mark.parametrize("queries", ["spread", "after_pairs"])
@pytest.mark.parametrize("filler", ["random", "constant"])
def test_mqar_layouts_and_fillers(queries, filler):
    L, V, n = 64, 128, 4
    task = Task("mqar", sequence_length=L, vocabulary_size=V, mqar_num_pairs=n,
                mqar_queries=queries, mqar_filler=filler)
    batch = sample(task, 32)
    inputs, targets = batch["inputs"], batch["targets"]
    orders = set()
    for row in range(32):
        mapping = dict(zip(inputs[row, 0:2 * n:2], inputs[row, 1:2 * n:2]))
        answers = np.nonzero(batch["answer_group"][row])[0]
        assert [mapping[inputs[row, t]] for t in answers] == targets[row, answers].tolist()
        if queries == "after_pairs":  # back to back right after the pairs
            assert answers.tolist() == list(range(2 * n, 4 * n, 2))
        orders.add(tuple(inputs[row, answers]))
        used = set(range(2 * n)) | set(answers.tolist())
        rest = np.array([inputs[row, t] for t in range(L) if t not in used])
        if filler == "constant":  # id 0 everywhere else, the hidden answers included
            assert np.all(rest == 0)
        else:
            assert len(set(rest.tolist())) > 10
    assert len(orders) == 32  # queries in a fresh random order
    if queries == "spread":  # the queries land all over the rest of the sequence
        spots = np.nonzero(batch["answer_group"])[1]
        assert spots.max() > L - 10 and spots.min() < 2 * n + 10


def test_induction_random_repeats_one_segment_at_random_offsets():
    L, V = 64, 64
    task = Task("induction", sequence_length=L, vocabulary_size=V, induction_min_length=6,
                induction_max_length=16, induction_repeat="random")
    batch = sample(task, 64)
    distances = set()
    for row, tokens in enumerate(full_sequences(batch)):
        answer_targets = np.nonzero(batch["answer_group"][row])[0]  # token t + 1 is an answer
        start, end = answer_targets[0], answer_targets[-1] + 1  # tokens start .. end: the copy
        length = end - start + 1
        assert 6 <= length <= 16 and np.array_equal(answer_targets, np.arange(start, end))
        # The earlier occurrence, found by independent code: the copy's tokens before it.
        earlier = [a for a in range(0, start - length + 1)
                   if np.array_equal(tokens[a:a + length], tokens[start:start + length])]
        assert earlier, "the copy has an earlier occurrence"
        distances.add(start - earlier[0])
    # No fixed offset: the distance back to the first occurrence varies widely.
    assert len(distances) > 20


@pytest.mark.parametrize("k", [0, 3])
def test_fewshot_mapping_is_consistent_and_shots_count_earlier_examples(k):
    V, C = 40, 3
    task = Task("fewshot", sequence_length=64, vocabulary_size=V, fewshot_k=k, fewshot_labels=C)
    batch = sample(task, 16)
    mappings = set()
    for row, tokens in enumerate(full_sequences(batch)):
        items, labels = tokens[0::2], tokens[1::2]
        assert all(i < V - C for i in items) and all(V - C <= y < V for y in labels)
        mapping = {}
        for item, label in zip(items, labels):
            assert mapping.setdefault(item, label) == label  # one label per item
        mappings.add(tuple(sorted(mapping.items())))
        answers = np.nonzero(batch["answer_group"][row])[0]
        counts = {}
        for t in answers:
            item = tokens[t]
            assert batch["targets"][row, t] == mapping[item]
            assert batch["shots"][row, t] == counts.get(item, 0)
            counts[item] = counts.get(item, 0) + 1
        assert set(counts.values()) == {k + 1}  # every item shown k + 1 times
    assert len(mappings) == 16  # a fresh mapping per sequence


@pytest.mark.parametrize("reverse", [True, False])
def test_addition_answers_are_the_sums(reverse):
    task = Task("addition", sequence_length=40, addition_digits=3, addition_reverse=reverse)
    tokenizer = task_tokenizer(task)
    batch = sample(task, 8)
    for row, tokens in enumerate(full_sequences(batch)):
        text = tokenizer.decode_text(tokens).replace(" ", "")
        problems = [p for p in text.split(";") if "=" in p]
        assert len(problems) == 41 // 13
        answer_digits = [str(tokens[t + 1]) for t in np.nonzero(batch["answer_group"][row])[0]]
        expected = ""
        for problem in problems:
            left, result = problem.split("=")
            a, b = left.split("+")
            assert len(a) == len(b) == 3 and len(result) == 4
            total = f"{int(a) + int(b):04d}"
            assert result == (total[::-1] if reverse else total)
            expected += result
        assert "".join(answer_digits) == expected


def test_datasets_are_seeded_and_splits_differ():
    task = Task("induction", sequence_length=16)
    first = next(iter(task_dataset(task, 4, seed=1)))["inputs"].numpy()
    again = next(iter(task_dataset(task, 4, seed=1)))["inputs"].numpy()
    other = next(iter(task_dataset(task, 4, seed=1, split="validation")))["inputs"].numpy()
    assert np.array_equal(first, again) and not np.array_equal(first, other)


@pytest.mark.parametrize("kwargs, flag", [
    (dict(name="mqar", sequence_length=64, vocabulary_size=128, mqar_num_pairs=17),
     "mqar_num_pairs=17"),
    (dict(name="mqar", sequence_length=64, vocabulary_size=64), "vocabulary_size=64"),
    (dict(name="nope", sequence_length=64), "task: unknown task 'nope'"),
    (dict(name="induction", sequence_length=16, induction_max_length=9),
     "induction_max_length=9"),
    (dict(name="fewshot", sequence_length=16, fewshot_k=8), "fewshot_k=8"),
    (dict(name="addition", sequence_length=8, addition_digits=3), "addition_digits=3"),
    (dict(name="addition", sequence_length=64, vocabulary_size=20), "vocabulary_size=20"),
    (dict(name="mqar", sequence_length=64, mqar_num_pairs=4, mqar_filler="zeros"),
     "mqar_filler: expected one of random, constant, got 'zeros'"),
    (dict(name="mqar", sequence_length=64, mqar_num_pairs=4, mqar_queries="end"),
     "mqar_queries: expected one of spread, after_pairs, got 'end'"),
    (dict(name="induction", sequence_length=64, induction_repeat="shifted"),
     "induction_repeat: expected one of periodic, random, got 'shifted'"),
])
def test_bad_parameters_name_the_argument(kwargs, flag):
    with pytest.raises(UsageError, match="^" + flag.replace("+", r"\+")) as error:
        Task(**kwargs)
    assert error.value.argument == flag.split("=")[0].split(":")[0]
