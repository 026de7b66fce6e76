"""Run an exported keras-s2s CTranslate2 model: strings in, strings out.

Shipped beside the model as `ctranslate2_translator.py`; it needs only ctranslate2 and, for
SentencePiece vocabularies, sentencepiece (not TensorFlow, not keras-s2s). Tokenization
matches the training tokenizers: characters, or the SentencePiece model's pieces (CTranslate2
reads a token it does not know as unk, as the tokenizers do). Decoding is set up as
keras-s2s decodes: pad and bos never output, eos allowed at the first step, sources cut to the
model's max source length, outputs to its max target length.

    from ctranslate2_translator import CTranslate2Translator
    translator = CTranslate2Translator("saved_models/multi30k_transformer_de_en-ctranslate2/1")
    translator.translate(["Zwei Hunde spielen im Schnee."], beam_size=4)
"""

from __future__ import annotations

import json
import os

import ctranslate2

INFO_FILE = "keras_s2s_export.json"


class _Tokens:
    """Text <-> tokens of one side: characters, or SentencePiece pieces."""

    def __init__(self, directory, entry):
        self.processor = None
        if entry["vocabulary"] == "sentencepiece":
            import sentencepiece

            path = os.path.join(directory, "assets", entry["file"])
            self.processor = sentencepiece.SentencePieceProcessor(model_file=path)
        elif entry["vocabulary"] != "characters":
            raise ValueError(f"Unknown vocabulary reader {entry['vocabulary']!r} in {INFO_FILE}")

    def encode(self, text: str) -> list[str]:
        if self.processor is None:
            return list(text)
        return self.processor.encode(text, out_type=str)

    def decode(self, tokens: list[str]) -> str:
        if self.processor is None:
            return "".join(tokens)
        return self.processor.decode_pieces(tokens)


class CTranslate2Translator:
    """Translation with an exported CTranslate2 model and its tokenizers.

    Args:
        directory: the export folder (holds `model.bin` and `keras_s2s_export.json`).
        compute_type: CTranslate2's compute type ("default": the stored weights' type;
            "int8" quantizes a float32 model as it loads).
        intra_threads: threads per translation (0: CTranslate2's default).
        inter_threads: translations run in parallel.
    """

    def __init__(self, directory, compute_type="default", intra_threads=0, inter_threads=1):
        self.directory = os.fspath(directory)
        with open(os.path.join(self.directory, INFO_FILE), encoding="utf-8") as f:
            self.info = json.load(f)
        self.translator = ctranslate2.Translator(
            self.directory, device="cpu", compute_type=compute_type,
            intra_threads=intra_threads, inter_threads=inter_threads,
        )  # fmt: skip
        self.source = _Tokens(self.directory, self.info["vocabularies"]["source"])
        self.target = _Tokens(self.directory, self.info["vocabularies"]["target"])
        special = self.info["special_tokens"]
        self.suppressed = [[special["pad"]], [special["bos"]]]

    def translate_tokens(
        self,
        sources,
        beam_size=1,
        num_results=1,
        length_penalty=0.0,
        max_batch_size=0,
        batch_type="examples",
    ):
        """Source tokens -> CTranslate2's `TranslationResult`s (`hypotheses`, `scores`: sums
        of log-probabilities, eos included, divided by `length ** length_penalty`)."""
        return self.translator.translate_batch(
            sources, beam_size=beam_size, num_hypotheses=num_results,
            length_penalty=length_penalty, return_scores=True,
            max_input_length=self.info["max_source_length"],
            max_decoding_length=self.info["max_target_length"] + 1,
            min_decoding_length=0, suppress_sequences=self.suppressed,
            max_batch_size=max_batch_size, batch_type=batch_type,
        )  # fmt: skip

    def translate_nbest(
        self,
        texts,
        beam_size=1,
        num_results=1,
        length_penalty=0.0,
        max_batch_size=0,
        batch_type="examples",
    ):
        """Texts -> per text, `num_results` (translation, score) pairs, best first."""
        results = self.translate_tokens(
            [self.source.encode(t) for t in texts], beam_size, num_results, length_penalty,
            max_batch_size, batch_type,
        )  # fmt: skip
        return [
            [(self.target.decode(h), s) for h, s in zip(r.hypotheses, r.scores, strict=True)]
            for r in results
        ]

    def translate(
        self, texts, beam_size=1, length_penalty=0.0, max_batch_size=0, batch_type="examples"
    ) -> list[str]:
        """Texts -> their best translations (greedy with `beam_size` 1)."""
        best = self.translate_nbest(texts, beam_size, 1, length_penalty, max_batch_size, batch_type)
        return [hypotheses[0][0] for hypotheses in best]
