"""Running position-wise work on the real tokens of a padded batch only."""

from keras import ops

from keras_s2s.compilation import in_xla_context


class Packing:
    """The real (non-padding) positions of a padded batch, to run position-wise layers on them
    only.

    Most of a Transformer's work is position-wise: the Q/K/V and output projections of
    attention, the feed-forward network, residuals and normalizations, the output layer. On a
    right-padded batch `[B, T]` with N real tokens those layers can run on the `[N, D]` real
    rows (`pack`) and only attention, which mixes positions, needs the `[B, T, D]` layout back
    (`unpack`, zeros at padding, which the attention masks ignore). The projections' work then
    shrinks by the batch's share of padding (the "remove padding" of FasterTransformer's
    effective Transformer and ByteTransformer). N varies from batch to batch, so the shapes are
    dynamic: `Packing.for_mask` returns None (pad as usual) under XLA and outside training,
    where static shapes matter (XLA, SavedModel and TFLite exports, cached decoding).

    Shape letters: B batch, T length, N real positions, C any trailing width.

    Args:
        mask: bool `[B, T]`, True on real tokens.

    Example:
    ```python
    packing = keras_s2s.layers.Packing(np.array([[True, True, False], [True, False, False]]))
    x = np.arange(12, dtype="float32").reshape(2, 3, 2)
    real = packing.pack(x)  # [3, 2]: rows (0, 0), (0, 1), (1, 0)
    packing.unpack(real)  # [2, 3, 2], zeros at the padding
    ```
    """

    def __init__(self, mask):
        mask = ops.cast(mask, "bool")
        shape = ops.shape(mask)
        self.batch_size, self.length = shape[0], shape[1]
        flat = ops.reshape(mask, (-1,))
        (self.indices,) = ops.nonzero(flat)  # [N], row-major
        count = ops.shape(self.indices)[0]
        # Where each of the B*T positions is among the packed rows; padding -> row N (zeros).
        self.inverse = ops.where(flat, ops.cumsum(ops.cast(flat, "int32")) - 1, count)

    @classmethod
    def for_mask(cls, mask, training):
        """A `Packing` of `mask` when packing pays and shapes may be dynamic (training, no XLA),
        else None."""
        if mask is None or not training or in_xla_context():
            return None
        return cls(mask)

    def pack(self, x):
        """`[B, T, C...]` -> `[N, C...]`, the real positions in row-major order."""
        return ops.take(ops.reshape(x, (-1,) + tuple(x.shape[2:])), self.indices, axis=0)

    def unpack(self, x):
        """`[N, C...]` -> `[B, T, C...]`, zeros at the padding."""
        rows = ops.concatenate([x, ops.zeros((1,) + tuple(x.shape[1:]), x.dtype)], axis=0)
        padded = ops.take(rows, self.inverse, axis=0)
        return ops.reshape(padded, (self.batch_size, self.length) + tuple(x.shape[1:]))

    def apply(self, fn, x):
        """`fn` (position-wise) on the real positions of `x` `[B, T, C...]` only; the result is
        unpacked to `[B, T, ...]` with zeros at the padding."""
        return self.unpack(fn(self.pack(x)))
