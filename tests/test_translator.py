"""`Translator` on a small untrained Bahdanau attention model (fixed seed, scaled weights).

Every check holds by construction of the decoders: greedy output is the argmax path with its
log-probability as score, an exhaustive beam is exact search, n-best scores are the length
normalized teacher-forced log-probabilities, and results do not depend on the batch.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_s2s
from keras_s2s.decoding import greedy_search
from keras_s2s.models import Seq2Seq
from keras_s2s.run_directory import RunDirectory
from keras_s2s.tokenizers import CharTokenizer

MAX_SOURCE, MAX_TARGET = 8, 5
# "1234+5678" is 9 characters: truncated to 8. "" encodes to one padding column.
TEXTS = ["12+34", "7+8", "99+1", "", "1234+5678", "5+5"]


def untrained_attention_model(tokenizer):
    """A small Bahdanau attention model, untrained but far from uniform.

    Its weights are scaled up (x3, the output projection x9) so that hypotheses differ by far
    more than float rounding (the smallest gap between the two best tokens of a greedy step is
    0.039, between two n-best scores 0.0023), and eos is favoured (+2 logit) so that hypotheses
    end at various lengths, the empty one included, or run to the maximum length.
    """
    keras.utils.set_random_seed(0)
    model = Seq2Seq(
        tokenizer.vocabulary_size, tokenizer.vocabulary_size, embedding_dim=8, hidden_dim=16,
        decoder="bahdanau", reverse_source=True,
    )  # fmt: skip
    ids = np.ones((1, 2), "int32")
    model({"encoder_token_ids": ids, "decoder_token_ids": ids})
    for weight in model.trainable_weights:
        weight.assign(3 * weight)
    projection = model.output_projection
    projection.kernel.assign(3 * projection.kernel)
    eos = np.eye(tokenizer.vocabulary_size, dtype="float32")[tokenizer.eos_id]
    projection.bias.assign(projection.bias + 2 * eos)
    return model


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory):
    """A run directory holding the model."""
    path = tmp_path_factory.mktemp("runs") / "attention"
    tokenizer = CharTokenizer.build(["0123456789+"])
    model = untrained_attention_model(tokenizer)
    run = RunDirectory(path)
    run.create({"name": "attention"})
    run.write_metadata(
        {
            "max_source_length": MAX_SOURCE,
            "max_target_length": MAX_TARGET,
            **run.save_tokenizers(tokenizer, tokenizer),
        }
    )
    model.save(run.model_path)
    return path


@pytest.fixture(scope="module")
def translator(attention_run):
    return keras_s2s.Translator.from_run_directory(attention_run)


def source_ids(tokenizer, texts):
    """Source ids built by hand: vocabulary indices, truncated, right-padded, width >= 1."""
    rows = [[tokenizer.vocabulary.index(c) for c in text[:MAX_SOURCE]] for text in texts]
    width = max(1, *map(len, rows))
    return np.array([row + [tokenizer.pad_id] * (width - len(row)) for row in rows], "int32")


def text_of(tokenizer, ids):
    """Target ids -> string by hand: characters up to eos (unknown ids are U+FFFD)."""
    ids = list(ids)
    ids = ids[: ids.index(tokenizer.eos_id)] if tokenizer.eos_id in ids else ids
    assert tokenizer.pad_id not in ids and tokenizer.bos_id not in ids
    return "".join("\ufffd" if t == tokenizer.unk_id else tokenizer.vocabulary[t] for t in ids)


def teacher_forced(model, tokenizer, sources, hypotheses):
    """Scores hypotheses `[B, N, T]` with the model's full (training) forward pass.

    Returns float64 `(log_probs [B, N], lengths [B, N], step_log_probs [B, N, T, V])`, the
    distributions with pad and bos made impossible, as the decoders see them; a hypothesis
    counts its tokens up to its eos included (all T without eos).
    """
    b, n, t = hypotheses.shape
    flat = hypotheses.reshape(b * n, t)
    inputs = np.concatenate([np.full((b * n, 1), tokenizer.bos_id), flat[:, :-1]], axis=1)
    logits = model(
        {
            "encoder_token_ids": np.repeat(sources, n, axis=0),
            "decoder_token_ids": inputs,
        }
    )
    logits = np.asarray(logits).astype("float64")
    logits[..., [tokenizer.pad_id, tokenizer.bos_id]] = -1e9
    top = logits.max(-1, keepdims=True)
    step_log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    chosen = np.take_along_axis(step_log_probs, flat[..., None], axis=-1)[..., 0]
    is_eos = flat == tokenizer.eos_id
    lengths = np.where(is_eos.any(1), is_eos.argmax(1) + 1, t)
    counted = np.arange(t)[None, :] < lengths[:, None]
    log_probs = np.where(counted, chosen, 0.0).sum(1)
    return (
        log_probs.reshape(b, n),
        lengths.reshape(b, n),
        step_log_probs.reshape(b, n, t, -1),
    )


def gnmt(lengths, alpha):
    return ((5.0 + lengths) / 6.0) ** alpha


def test_greedy_translation_is_greedy_search_on_the_model(translator):
    model, tokenizer = translator.model, translator.target_tokenizer
    sources = source_ids(tokenizer, TEXTS)
    np.testing.assert_array_equal(translator.encode_sources(tf.constant(TEXTS)), sources)

    ids, scores = (t.numpy() for t in translator.decode_ids(sources, beam_size=1))
    assert ids.shape == (len(TEXTS), 1, MAX_TARGET + 1) and scores.shape == (len(TEXTS), 1)
    direct_ids, direct_scores = greedy_search(
        model.decode_step, model.encode(sources), len(TEXTS), MAX_TARGET + 1
    )
    np.testing.assert_array_equal(ids[:, 0], direct_ids.numpy())
    np.testing.assert_allclose(scores[:, 0], direct_scores.numpy(), rtol=1e-5, atol=1e-5)
    assert translator.translate(TEXTS) == [text_of(tokenizer, row) for row in ids[:, 0]]

    # Each token is the argmax of the model's distribution; the score is the path's log-prob.
    log_probs, lengths, steps = teacher_forced(model, tokenizer, sources, ids)
    np.testing.assert_allclose(scores, log_probs, atol=1e-4)
    for row, (length, hypothesis) in enumerate(zip(lengths[:, 0], ids[:, 0], strict=True)):
        for t in range(length):
            assert steps[row, 0, t, hypothesis[t]] >= steps[row, 0, t].max() - 1e-5
        assert np.all(hypothesis[length:] == tokenizer.pad_id)


def test_translations_do_not_depend_on_the_batch(translator):
    alone = [translator.translate_nbest([text], beam_size=2)[0][0] for text in TEXTS]
    batched = [h[0] for h in translator.translate_nbest(TEXTS, beam_size=2, batch_size=4)]
    assert [text for text, _ in batched] == [text for text, _ in alone]
    np.testing.assert_allclose([s for _, s in batched], [s for _, s in alone], atol=1e-4)
    # Truncation: the 9-character source translates like its first 8 characters.
    truncated = translator.translate_nbest(["1234+5678", "1234+567"], beam_size=2)
    assert [h[0][0] for h in truncated] == [batched[4][0]] * 2


def test_each_decoding_setting_is_traced_once_for_any_batch_size_and_width(attention_run):
    """Batches of other sizes and source widths reuse the first call's trace (traced for any
    sizes); `reduce_retracing` alone traced three times (first shapes, then each dim relaxed)."""
    translator = keras_s2s.Translator.from_run_directory(attention_run)
    batches = [["1+1", "22+3"], ["12+34", "7+8", "99+1"], ["5"], ["1234+567", "1"]]
    controls = keras_s2s.DecodingControls(no_repeat_ngram_size=2)
    for batch in batches:
        for beam_size in (1, 3):
            assert len(translator.translate(batch, beam_size=beam_size)) == len(batch)
        assert len(translator.translate(batch, controls=controls)) == len(batch)
        assert len(translator.sample(batch, num_samples=2, seed=len(batch))) == len(batch)
    counts = [f.function.experimental_get_tracing_count()
              for key, f in translator._functions.items() if isinstance(key, tuple)]  # fmt: skip
    assert counts == [1, 1, 1, 1]  # greedy, beam 3, greedy under controls, sampling


def test_a_function_needing_a_static_dimension_is_traced_as_the_calls_come():
    """The general trace fails (a static width is needed, as for a fixed-width model): calls
    still run, traced as `reduce_retracing` relaxes them (here the batch size only)."""
    from keras_s2s.translator import _AnySizes

    def needs_static_width(ids):
        if ids.shape[1] is None:
            raise ValueError("a static width is needed")
        return tf.reduce_sum(ids, axis=1) * ids.shape[1]

    function = _AnySizes(tf.function(needs_static_width, reduce_retracing=True))
    first = function(tf.constant([[1, 2], [3, 4]]))
    second = function(tf.constant([[5, 6]]))
    third = function(tf.constant([[1, 1], [2, 2], [3, 3]]))
    np.testing.assert_array_equal(first, [6, 14])
    np.testing.assert_array_equal(second, [22])
    np.testing.assert_array_equal(third, [4, 8, 12])
    assert function.function.experimental_get_tracing_count() == 2


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_a_beam_holding_every_hypothesis_is_exact_search(translator, alpha):
    """With one target token at most, a beam of (U + 1)^2 >= U (U + 1) candidates (U = tokens
    other than pad, bos and eos) keeps every hypothesis: its n-best is the true n-best."""
    model, tokenizer = translator.model, translator.target_tokenizer
    short = keras_s2s.Translator(model, tokenizer, tokenizer, MAX_SOURCE, max_target_length=1)
    sources = source_ids(tokenizer, TEXTS)
    eos, pad = tokenizer.eos_id, tokenizer.pad_id
    usable = [t for t in range(tokenizer.vocabulary_size) if t not in (pad, tokenizer.bos_id, eos)]
    every = [[eos, pad]] + [[a, eos] for a in usable] + [[a, b] for a in usable for b in usable]
    every = np.array(every, "int32")
    beam = (len(usable) + 1) ** 2
    ids, scores = (t.numpy() for t in short.decode_ids(sources, beam, 10, alpha))

    all_hypotheses = np.repeat(every[None], len(TEXTS), axis=0)
    log_probs, lengths, _ = teacher_forced(model, tokenizer, sources, all_hypotheses)
    exact = -np.sort(-(log_probs / gnmt(lengths, alpha)), axis=1)[:, :10]
    np.testing.assert_allclose(scores, exact, atol=1e-4)
    beam_log_probs, beam_lengths, _ = teacher_forced(model, tokenizer, sources, ids)
    np.testing.assert_allclose(scores, beam_log_probs / gnmt(beam_lengths, alpha), atol=1e-4)
    if alpha == 0.0:  # exact search scores at least the greedy path
        _, greedy_scores = short.decode_ids(sources)
        assert np.all(scores[:, 0] >= greedy_scores.numpy()[:, 0] - 1e-5)


def test_nbest_lists_are_sorted_distinct_and_scored_by_log_probability(translator):
    model, tokenizer = translator.model, translator.target_tokenizer
    nbest = translator.translate_nbest(TEXTS, beam_size=3, num_results=3, length_penalty=0.6)
    assert [len(h) for h in nbest] == [3] * len(TEXTS)
    sources = source_ids(tokenizer, TEXTS)
    ids, scores = (t.numpy() for t in translator.decode_ids(sources, 3, 3, 0.6))
    for row, hypotheses in enumerate(nbest):
        texts = [text for text, _ in hypotheses]
        assert texts == [text_of(tokenizer, h) for h in ids[row]]
        assert len(set(texts)) == 3
        row_scores = [score for _, score in hypotheses]
        assert row_scores == sorted(row_scores, reverse=True)
        np.testing.assert_allclose(row_scores, scores[row], rtol=1e-6)
    log_probs, lengths, _ = teacher_forced(model, tokenizer, sources, ids)
    np.testing.assert_allclose(scores, log_probs / gnmt(lengths, 0.6), atol=1e-4)

    # Asking for one result stops the same search earlier, with the same best hypothesis.
    plain = translator.translate_nbest(TEXTS, beam_size=3, num_results=3)
    assert translator.translate(TEXTS, beam_size=3) == [h[0][0] for h in plain]
    with pytest.raises(ValueError, match="`num_results` must be between 1 and beam_size=2"):
        translator.translate_nbest(TEXTS, beam_size=2, num_results=3)


def test_attention_weights_of_one_translation(translator):
    source, target, weights = translator.attention("12+34")
    assert source == ["1", "2", "+", "3", "4"]
    assert 1 <= len(target) <= MAX_TARGET + 1
    assert weights.shape == (len(target), 5)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    # The same greedy translation as `translate`, eos included when it was produced.
    eos = translator.target_tokenizer.id_to_token(translator.target_tokenizer.eos_id)
    text = "".join(target[:-1] if target[-1] == eos else target)
    assert text.replace("<unk>", "\ufffd") == translator.translate(["12+34"])[0]
    # A source longer than max_source_length is truncated before attention too.
    assert translator.attention("1234+5678")[0] == list("1234+567")


def test_translate_command_with_beam_nbest_and_attention_plot(translator, attention_run, tmp_path):
    png = tmp_path / "attention.png"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "keras_s2s.cli.main", "translate", str(attention_run),
         "12+34", "5+5", "--beam", "3", "--nbest", "2", "--plot-attention", str(png)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    fields = [line.split(" ||| ") for line in lines[:-1]]
    expected = translator.translate_nbest(["12+34", "5+5"], beam_size=3, num_results=2)
    expected = [(str(i), text, score) for i, h in enumerate(expected) for text, score in h]
    assert [(i, text) for i, text, _ in fields] == [(i, text) for i, text, _ in expected]
    np.testing.assert_allclose([float(s) for *_, s in fields], [s for *_, s in expected], atol=2e-4)
    figures = json.loads(lines[-1])
    assert figures["beam"] == 3 and figures["nbest"] == 2 and figures["count"] == 2
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_translate_command_rejects_bad_beam_options(attention_run, capsys):
    from keras_s2s.cli.main import main

    assert main(["translate", str(attention_run), "1+1", "--beam", "2", "--nbest", "3"]) == 2
    assert "--nbest must be between 1 and --beam" in capsys.readouterr().err


def test_samples_are_scored_by_the_model_and_reproducible_under_a_seed(translator):
    model, tokenizer = translator.model, translator.target_tokenizer
    sources = source_ids(tokenizer, TEXTS)
    ids, log_probs = (t.numpy() for t in translator.sample_ids(sources, 6, 1.5, 0, 1.0, seed=4))
    assert ids.shape[:2] == (len(TEXTS), 6)
    expected, _, _ = teacher_forced(model, tokenizer, sources, ids)
    np.testing.assert_allclose(log_probs, expected, atol=1e-4)

    samples = translator.sample(TEXTS, num_samples=6, temperature=1.5, seed=4)
    assert [len(s) for s in samples] == [6] * len(TEXTS)
    assert samples == translator.sample(TEXTS, num_samples=6, temperature=1.5, seed=4)
    other = translator.sample(TEXTS, num_samples=6, temperature=1.5, seed=5)
    assert [t for s in other for t, _ in s] != [t for s in samples for t, _ in s]
    assert len({t for s in samples for t, _ in s}) > len(TEXTS)  # not one output per source
    # Cut to the most likely token, sampling is greedy search.
    greedy = translator.sample(TEXTS, num_samples=2, top_k=1, seed=9)
    assert [[t for t, _ in s] for s in greedy] == [[t, t] for t in translator.translate(TEXTS)]
    with pytest.raises(ValueError, match="`top_p` must be in"):
        translator.sample(TEXTS, top_p=0.0)


def test_translate_command_samples(translator, attention_run, capsys):
    from keras_s2s.cli.main import main

    argv = ["translate", str(attention_run), "12+34", "5+5", "--sample", "--num-samples", "3"]
    assert main([*argv, "--temperature", "1.5", "--top-k", "5", "--seed", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = translator.sample(["12+34", "5+5"], 3, temperature=1.5, top_k=5, seed=2)
    expected = [
        f"{i} ||| {text} ||| {score:.4f}" for i, h in enumerate(expected) for text, score in h
    ]
    assert lines[:-1] == expected
    assert json.loads(lines[-1])["num_samples"] == 3
    assert main([*argv, "--beam", "2"]) == 2
    assert "--sample draws samples: leave out --beam" in capsys.readouterr().err


def test_translate_command_names_bad_sampling_options(attention_run, capsys):
    from keras_s2s.cli.main import main

    run = ["translate", str(attention_run), "1+1"]
    assert main([*run, "--top-k", "3", "--seed", "1"]) == 2
    assert "--top-k, --seed: only with --sample" in capsys.readouterr().err
    assert main([*run, "--sample", "--top-p", "1.5"]) == 2
    assert "--top-p must be in (0, 1]. Received: --top-p=1.5" in capsys.readouterr().err


def output_tokens(translator, texts, **kwargs):
    """Each output's target tokens before eos, by `decode_ids` (greedy, or `beam_size`)."""
    ids, _ = translator.decode_ids(source_ids(translator.target_tokenizer, texts), **kwargs)
    eos = translator.target_tokenizer.eos_id
    rows = [list(row[0]) for row in ids.numpy()]
    return [row[: row.index(eos)] if eos in row else row for row in rows]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_decoding_controls_bound_lengths_and_ban_repeats_and_words(translator, beam_size):
    from keras_s2s import DecodingControls

    lengths = [min(len(t), MAX_SOURCE) for t in TEXTS]
    greedy = output_tokens(translator, TEXTS)
    assert any(len(o) != len(set(o)) for o in greedy)  # repeats to ban
    # Beam search prefers the empty output of every text: minimum lengths make it say more.
    at_least = {"min_length_ratio": 0.7}

    def under(**controls):
        return output_tokens(
            translator, TEXTS, beam_size=beam_size, controls=DecodingControls(**controls)
        )

    for output, n in zip(under(max_length_ratio=0.5), lengths, strict=True):
        assert len(output) <= np.ceil(0.5 * n)
    for output, n in zip(under(**at_least), lengths, strict=True):
        assert len(output) >= min(np.ceil(0.7 * n), MAX_TARGET + 1)
    for output in under(no_repeat_ngram_size=1, **at_least):
        assert len(output) == len(set(output))
    common = max(set(sum(greedy, [])), key=sum(greedy, []).count)  # the most frequent token
    word = translator.target_tokenizer.id_to_token(common)
    with_word = under(**at_least)
    assert any(common in output for output in with_word)
    banned = under(banned_words=[word], **at_least)
    assert all(common not in output for output in banned)
    texts = translator.translate(TEXTS, beam_size, controls=DecodingControls(banned_words=[word]))
    assert all(word not in text for text in texts)
    with pytest.raises(ValueError, match="min_ratio <= max_ratio"):
        DecodingControls(min_length_ratio=2.0, max_length_ratio=1.0)


def test_translate_command_applies_the_controls(translator, attention_run, capsys):
    from keras_s2s import DecodingControls
    from keras_s2s.cli.main import main

    argv = ["translate", str(attention_run), *TEXTS[:3], "--no-repeat-ngram", "1", "--ban", "1"]
    assert main([*argv, "--max-length-ratio", "0.9"]) == 0
    controls = DecodingControls(max_length_ratio=0.9, no_repeat_ngram_size=1, banned_words=["1"])
    expected = translator.translate(TEXTS[:3], controls=controls)
    assert capsys.readouterr().out.strip().splitlines()[:-1] == expected
    assert main([*argv, "--min-length-ratio", "2", "--max-length-ratio", "1"]) == 2
    assert "--min-length-ratio <= --max-length-ratio" in capsys.readouterr().err


def test_scores_of_given_translations_are_the_decoders_log_probabilities(translator):
    greedy = translator.translate_nbest(TEXTS, beam_size=1)
    nbest = translator.translate_nbest(TEXTS, beam_size=3, num_results=3)
    for results in (greedy, nbest):
        # The outputs that ended with eos (one that ran to the maximum length has none).
        pairs = [
            (text, h) for text, hs in zip(TEXTS, results, strict=True) for h in hs
            if len(h[0]) <= MAX_TARGET
        ]  # fmt: skip
        assert len(pairs) >= len(TEXTS) // 2
        scores = translator.score([t for t, _ in pairs], [h for _, (h, _) in pairs])
        np.testing.assert_allclose(
            [s.log_prob for s in scores], [score for _, (_, score) in pairs], atol=1e-4
        )
    score = translator.score(["12+34"], ["46"])[0]
    assert score.tokens == ["4", "6", "</s>"] and len(score.token_log_probs) == 3
    assert score.normalized() == pytest.approx(score.log_prob / 3)
    assert not score.truncated and translator.score(["1+1"], ["1234567"])[0].truncated
    with pytest.raises(ValueError, match="2 sources and 1 targets"):
        translator.score(["1", "2"], ["3"])


def test_score_command(translator, attention_run, tmp_path, capsys):
    from keras_s2s.cli.main import main

    (tmp_path / "src.txt").write_text("12+34\n7+8\n")
    (tmp_path / "tgt.txt").write_text("46\n15\n")
    argv = ["score", str(attention_run), "--source", str(tmp_path / "src.txt"), "--target"]
    assert main([*argv, str(tmp_path / "tgt.txt"), "--normalize", "--tokens"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = translator.score(["12+34", "7+8"], ["46", "15"])
    for line, score in zip(lines[:2], expected, strict=True):
        value, tokens = line.split(" ||| ")
        assert float(value) == pytest.approx(score.normalized(), abs=1e-4)
        assert [t.rsplit(":", 1)[0] for t in tokens.split()] == score.tokens
    assert json.loads(lines[-1])["count"] == 2
    (tmp_path / "short.txt").write_text("46\n")
    assert main([*argv, str(tmp_path / "short.txt")]) == 2
    assert "has 2 lines but" in capsys.readouterr().err


def test_translations_continue_their_prefixes(translator):
    plain = translator.translate(TEXTS)
    # A prefix the model would output anyway changes nothing (greedy continues the same way).
    assert translator.translate(TEXTS, prefixes=[t[:2] for t in plain]) == plain
    assert translator.translate(TEXTS, prefixes=[""] * len(TEXTS)) == plain
    forced = translator.translate(TEXTS, prefixes=["9+"] * len(TEXTS))
    assert all(t.startswith("9+") for t in forced) and forced != plain
    nbest = translator.translate_nbest(TEXTS, 3, 3, prefixes=["7"] + [""] * (len(TEXTS) - 1))
    assert all(text.startswith("7") for text, _ in nbest[0])
    samples = translator.sample(TEXTS[:2], num_samples=4, seed=3, prefixes=["88", "1"])
    assert all(t.startswith("88") for t, _ in samples[0])
    assert all(t.startswith("1") for t, _ in samples[1])
    with pytest.raises(ValueError, match="1 prefixes for 6 texts"):
        translator.translate(TEXTS, prefixes=["1"])


def test_translate_command_reads_a_prefix_file(translator, attention_run, tmp_path, capsys):
    from keras_s2s.cli.main import main

    (tmp_path / "prefixes.txt").write_text("9+\n\n")
    argv = ["translate", str(attention_run), "12+34", "7+8", "--prefix-file"]
    assert main([*argv, str(tmp_path / "prefixes.txt")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[:-1]
    assert lines == translator.translate(["12+34", "7+8"], prefixes=["9+", ""])
    (tmp_path / "one.txt").write_text("9+\n")
    assert main([*argv, str(tmp_path / "one.txt")]) == 2
    assert "one.txt has 1 lines for 2 inputs" in capsys.readouterr().err


def test_an_ensemble_averages_the_models_log_probabilities(translator, attention_run, tmp_path):
    import shutil

    twice = keras_s2s.Translator.ensemble([attention_run, translator])
    assert twice.translate(TEXTS) == translator.translate(TEXTS)
    assert twice.translate(TEXTS, beam_size=3) == translator.translate(TEXTS, beam_size=3)
    other_run = tmp_path / "other"
    shutil.copytree(attention_run, other_run)
    other = RunDirectory(other_run).load_model()
    bias = other.output_projection.bias
    bias.assign(bias + np.random.default_rng(0).normal(0, 3, bias.shape).astype("float32"))
    other.save(RunDirectory(other_run).model_path)
    ensemble = keras_s2s.Translator.ensemble([attention_run, other_run])
    alone = keras_s2s.Translator.from_run_directory(other_run)
    outputs = ensemble.translate(TEXTS)
    assert outputs != translator.translate(TEXTS) or outputs != alone.translate(TEXTS)
    # The first step's distribution is the renormalized mean of the two models' log-probabilities.
    sources = source_ids(translator.target_tokenizer, TEXTS)
    first = [t.model.decode_step(tf.fill([len(TEXTS)], 2), t.model.encode(sources), 0)[0]
             for t in (translator, alone)]  # fmt: skip
    mean = sum(tf.nn.log_softmax(logits) for logits in first) / 2
    state = ensemble.model.encode(sources)
    ensemble_logits, _ = ensemble.model.decode_step(tf.fill([len(TEXTS)], 2), state, 0)
    np.testing.assert_allclose(ensemble_logits.numpy(), mean.numpy(), atol=1e-5)
    # Its outputs are scored by its own distribution.
    ended = [(s, o) for s, o in zip(TEXTS, ensemble.translate_nbest(TEXTS, 1), strict=True)
             if len(o[0][0]) <= MAX_TARGET]  # fmt: skip
    scores = ensemble.score([s for s, _ in ended], [o[0][0] for _, o in ended])
    np.testing.assert_allclose([s.log_prob for s in scores], [o[0][1] for _, o in ended], atol=1e-4)


def test_translate_command_with_an_ensemble(attention_run, capsys):
    from keras_s2s.cli.main import main

    argv = ["translate", str(attention_run), *TEXTS[:3], "--ensemble", str(attention_run)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()[:-1]
    assert lines == keras_s2s.Translator.from_run_directory(attention_run).translate(TEXTS[:3])


def test_translate_command_checks_sampling_settings_before_loading_the_run(tmp_path, capsys):
    from keras_s2s.cli.main import main

    missing = str(tmp_path / "no_run")  # Never read: the settings are refused first.
    assert main(["translate", missing, "1+1", "--sample", "--top-k", "-2"]) == 2
    assert "--top-k must be >= 0. Received: --top-k=-2" in capsys.readouterr().err


def test_translations_contain_their_constraint_phrases(translator):
    constraints = [["77"], ["1", "9"], [], ["+"], ["5"], ["00"]]
    outputs = translator.translate_nbest(TEXTS, 4, constraints=constraints)
    for phrases, hypotheses in zip(constraints, outputs, strict=True):
        text, score = hypotheses[0]
        assert all(phrase in text for phrase in phrases), (phrases, text)
    # Scores are the outputs' log-probabilities under the model (alpha 0), as for beam search.
    pairs = [(s, o[0]) for s, o in zip(TEXTS, outputs, strict=True) if len(o[0][0]) <= MAX_TARGET]
    scores = translator.score([s for s, _ in pairs], [o[0] for _, o in pairs])
    np.testing.assert_allclose([s.log_prob for s in scores], [o[1] for _, o in pairs], atol=1e-4)
    with pytest.raises(ValueError, match="1 constraints for 6 texts"):
        translator.translate(TEXTS, beam_size=4, constraints=[["1"]])


def test_alignments_are_the_attention_argmax_and_unknowns_are_copied(translator):
    outputs = translator.translate(TEXTS)
    ended = [(t, o) for t, o in zip(TEXTS, outputs, strict=True) if t and len(o) <= MAX_TARGET]
    assert ended
    texts, outputs = [t for t, _ in ended], [o for _, o in ended]
    for text, output, alignment in zip(
        texts, outputs, translator.align(texts, outputs), strict=True
    ):
        source, target, weights = translator.attention(text)
        assert "".join(target[:-1]) == output  # the greedy output, then eos
        assert alignment.source_tokens == source and alignment.target_tokens == target[:-1]
        assert alignment.pairs == [(int(i), j) for j, i in enumerate(weights[:-1].argmax(-1))]
        assert alignment.pharaoh() == " ".join(f"{i}-{j}" for i, j in alignment.pairs)
    # "x" is not in the vocabulary: the prefix makes the first output token unk (U+FFFD).
    forced = translator.translate(TEXTS[:2], prefixes=["x", "x"])
    assert all(text.startswith("\ufffd") for text in forced)
    copied = translator.replace_unknown(TEXTS[:2], forced)
    for text, before, after, alignment in zip(
        TEXTS[:2], forced, copied, translator.align(TEXTS[:2], forced), strict=True
    ):
        assert after == text[alignment.pairs[0][0]] + before[1:]


def test_translate_command_constraints_alignments_and_unknowns(
    translator, attention_run, tmp_path, capsys
):
    from keras_s2s.cli.main import main

    (tmp_path / "terms.txt").write_text("77\n1\t9\n")
    argv = ["translate", str(attention_run), "12+34", "7+8", "--beam", "4"]
    assert main([*argv, "--constraints-file", str(tmp_path / "terms.txt"), "--alignments"]) == 0
    *lines, last = capsys.readouterr().out.strip().splitlines()
    expected = translator.translate(["12+34", "7+8"], 4, constraints=[["77"], ["1", "9"]])
    alignments = translator.align(["12+34", "7+8"], expected)
    assert lines == [f"{t} ||| {a.pharaoh()}" for t, a in zip(expected, alignments, strict=True)]
    assert json.loads(last)["constraints_met"] == json.loads(last)["constraints"] == 3
    (tmp_path / "x.txt").write_text("x\nx\n")
    assert main([*argv, "--prefix-file", str(tmp_path / "x.txt"), "--replace-unknown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[:-1]
    forced = translator.translate(["12+34", "7+8"], 4, prefixes=["x", "x"])
    assert lines == translator.replace_unknown(["12+34", "7+8"], forced)
    assert main([*argv, "--sample", "--constraints-file", str(tmp_path / "terms.txt")]) == 2
    assert "--constraints-file needs beam search" in capsys.readouterr().err


def test_an_ensemble_exports_as_one_saved_model(translator, attention_run, tmp_path, capsys):
    from keras_s2s.cli.main import main

    root = tmp_path / "saved_models"
    argv = ["export", str(attention_run), "--output-root", str(root), "--ensemble"]
    assert main([*argv, str(attention_run), "--format", "all"]) == 2
    assert "An ensemble exports as a SavedModel only" in capsys.readouterr().err
    assert not root.exists() or not any(root.iterdir())  # nothing written
    argv += [str(attention_run), "--format", "savedmodel", "--name", "pair"]
    assert main([*argv, "--signatures", "serving_default"]) == 0
    served = tf.saved_model.load(str(root / "pair" / "1"))
    info = json.loads((root / "pair" / "1" / "assets.extra" / "keras_s2s_export.json").read_text())
    assert info["ensemble"] == [str(attention_run.resolve())]
    assert info["signatures"] == ["serving_default"] == list(served.signatures)
    # An ensemble of a run with itself translates as the run alone.
    out = served.signatures["serving_default"](text=tf.constant(TEXTS))["translations"]
    assert [t.decode() for t in out.numpy()] == translator.translate(TEXTS)
