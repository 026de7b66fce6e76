"""Tiny pipelines for tests that run real `train` / `tune` processes."""

from pathlib import Path


def addition_pipeline(folder: Path, operands: int, b_step: int, sections: str, validation=100):
    """Writes `addition.txt` (DLFS2 format: "a+b_sum" for a < operands, b < operands in steps
    of b_step) and `tiny.toml` reading it (character tokenizer, the validation split held out)
    into `folder`, with `sections` (TOML: `[model]`, `[training]`, ...) appended; returns the
    pipeline file's path."""
    lines = "".join(
        f"{a}+{b}_{a + b}\n" for a in range(0, operands) for b in range(0, operands, b_step)
    )
    (folder / "addition.txt").write_text(lines)
    path = folder / "tiny.toml"
    path.write_text(
        'description = "tiny addition"\n'
        '[data]\nsource = "dlfs2"\ntrain = ["addition.txt"]\n'
        f"validation_size = {validation}\n"
        'tokenizer = "char"\nmax_source_length = 8\nmax_target_length = 5\n' + sections
    )
    return path
