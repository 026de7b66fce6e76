from keras import ops


def as_list(states):
    return list(states) if isinstance(states, list | tuple) else [states]


def along_time(vector, sequence):
    """Broadcasts `vector [B, H]` along the time axis of `sequence [B, T, D]` -> `[B, T, H]`."""
    return ops.expand_dims(vector, 1) + ops.zeros_like(sequence[..., :1])
