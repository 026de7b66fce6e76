"""A run directory holds everything needed to use a trained model.

    config.json          the merged pipeline config the run was trained with
    model.keras          the model to use (best by `training.monitor`, or the last epoch)
    source<suffix>       source tokenizer asset (char vocabulary or SentencePiece model)
    target<suffix>       target tokenizer asset (the same file as the source when shared)
    run.json             status, max lengths, vocabulary hashes and sizes, data and training
                         figures
    logs/                TensorBoard logs
    backup/<worker>/     while it trains: the last epoch's weights and optimizer state
                         (`keras.callbacks.BackupAndRestore`), removed when it finishes
    train.lock           while it trains: the training process's pid, host and start time

Every file is written to a temporary name in the directory and renamed into place, so an
interrupted save never leaves a half-written file under the real name. `run.json` records the
run's `status`: "running" while it trains, then "finished", "failed" or "interrupted"; the
readers refuse a run that did not finish unless asked (`allow_unfinished`), so a failed or
killed `train` leaves nothing that passes for a finished run, and its last checkpoint is still
there. A damaged file (cut short, empty, not what it should be) is a `RunDirectoryError` naming
it.

`Translator.from_run_directory`, `evaluate` and `export` all read it through this module, so
nothing is re-derived differently in two places.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from keras_s2s.config import DEFAULTS, merge, migrate
from keras_s2s.errors import ConfigError, RunDirectoryError

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
METADATA_FILE = "run.json"
BACKUP_DIR = "backup"
LOCK_FILE = "train.lock"
FINISHED = "finished"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yields a temporary path beside `path`; renamed to `path` if the block succeeds.

    The temporary name starts with a dot and ends with `suffix` (Keras insists on `.keras`).
    A failure (or an interruption) removes it and leaves any earlier `path` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent
    )
    os.close(fd)
    temporary = Path(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes `data` to `path` through a temporary file renamed into place."""
    with atomic_path(path) as temporary:
        if isinstance(data, str):
            temporary.write_text(data, encoding="utf-8")
        else:
            temporary.write_bytes(data)


def _dumps(value: dict) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"


class RunDirectory:
    """Reads and writes one run directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def _require(self, name: str) -> Path:
        file = self.path / name
        if not file.is_file():
            if not self.path.is_dir():
                if self.path.exists():
                    raise RunDirectoryError(f"Not a run directory (it is a file): {self.path}")
                raise RunDirectoryError(f"Run directory not found: {self.path}")
            raise RunDirectoryError(
                f"Run directory {self.path} has no {name}: is it a finished keras-s2s run?"
            )
        return file

    # === Writing ===

    def create(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path / CONFIG_FILE, _dumps(config))

    def save_tokenizers(self, source, target) -> dict:
        shared = source is target
        entries = {}
        for side, tokenizer in (("source", source), ("target", target)):
            stem = "vocabulary" if shared else side
            file = stem + tokenizer.asset_suffix
            if not (shared and side == "target"):
                write_atomic(self.path / file, tokenizer.asset_bytes())
            entries[side] = {
                "file": file,
                "sha256": tokenizer.fingerprint(),
                "size": tokenizer.vocabulary_size,
                "type": type(tokenizer).__name__,
            }
        return {"shared_vocabulary": shared, **entries}

    def write_metadata(self, metadata: dict) -> None:
        merged = {**self.metadata(missing_ok=True), **metadata}
        write_atomic(self.path / METADATA_FILE, _dumps(merged))

    def save_model(self, model) -> None:
        """Saves `model` as `model.keras` through a temporary file renamed into place."""
        with atomic_path(self.model_path, suffix=".keras") as temporary:
            model.save(temporary)

    # === Reading ===

    def _read_json(self, name: str) -> dict:
        file = self._require(name)
        try:
            value = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            size = file.stat().st_size
            raise RunDirectoryError(
                f"{file} is damaged ({size} bytes, not valid JSON: {e}); "
                "retrain, or restore it from a backup"
            ) from None
        if not isinstance(value, dict):
            raise RunDirectoryError(f"{file} is damaged: expected a JSON object")
        return value

    def stored_config(self) -> dict:
        """`config.json` as it was written (without today's defaults; renamed keys under
        their names of today)."""
        return migrate(self._read_json(CONFIG_FILE), CONFIG_FILE, warn=False)

    def config(self) -> dict:
        """The run's pipeline config, over today's defaults (a key added since the run was
        trained takes its default)."""
        return merge(DEFAULTS, self.stored_config())

    def metadata(self, missing_ok: bool = False) -> dict:
        if missing_ok and not (self.path / METADATA_FILE).is_file():
            return {}
        return self._read_json(METADATA_FILE)

    def entry(self, key: str):
        """One entry of `run.json`; a missing one is a `RunDirectoryError` naming it."""
        meta = self.metadata()
        if key not in meta:
            raise RunDirectoryError(
                f"{self.path / METADATA_FILE} has no '{key}' entry: is it a keras-s2s run?"
            )
        return meta[key]

    def status(self) -> str:
        """`run.json`'s status: "running" (or killed), "finished", "failed", "interrupted";
        "running" before `run.json` is written, "finished" for a run written by hand."""
        if not (self.path / METADATA_FILE).is_file():
            return "running"
        return self.metadata().get("status", FINISHED)

    def state(self) -> str:
        """What `path` holds, for a command about to train into it: "new" (nothing, an empty
        folder, or only a stale lock), "finished" (a finished run) or "unfinished" (a run that
        started and did not finish: it may be resumed). Anything else is refused with a
        `RunDirectoryError` naming it: a file, or a folder holding something other than a run
        (a user's folder is never moved or written into)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"The run directory {self.path} is a file, not a directory")
        if not self.path.exists() or not any(p.name != LOCK_FILE for p in self.path.iterdir()):
            return "new"
        if not (self.path / CONFIG_FILE).is_file() and not (self.path / METADATA_FILE).is_file():
            raise RunDirectoryError(
                f"{self.path} is not a run directory (it has no {CONFIG_FILE} or "
                f"{METADATA_FILE}); choose an empty or new folder"
            )
        return FINISHED if self.status() == FINISHED else "unfinished"

    # === Resuming ===

    def resumable(self, config: dict) -> bool:
        """Whether this unfinished run (see `state`) holds a run of `config` (train resumes
        it) rather than no config (train starts one). An unfinished run of another config is
        a `ConfigError` naming the differences: nothing is overwritten."""
        if not (self.path / CONFIG_FILE).is_file():
            return False
        status = self.status()
        differences = config_differences(self.stored_config(), config)
        if differences:
            raise ConfigError(
                f"{self.path} holds an unfinished run (status '{status}') of a different config "
                f"({', '.join(differences[:5])}{', ...' if len(differences) > 5 else ''}); "
                "rerun it with the same config to resume it, or train into another directory"
            )
        return True

    def saved_tokenizers(self):
        """The tokenizers an unfinished run saved (a resumed run must keep its ids), or None
        if it was stopped before saving them."""
        try:
            return self.load_tokenizers()
        except RunDirectoryError:
            return None

    def move_aside(self) -> Path:
        """Renames the run directory to `<name>.previous-<time>` beside it; returns the new
        path (the current directory's own path works too: it is resolved first)."""
        path = self.path.resolve()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = path.with_name(f"{path.name}.previous-{stamp}")
        for n in range(1, 1000):
            if not target.exists():
                break
            target = path.with_name(f"{path.name}.previous-{stamp}-{n}")
        path.rename(target)
        return target

    # === The lock of a training process ===

    def lock_holder(self) -> dict | None:
        """The process that holds this run's lock (`{"pid", "host", "start", "since"}`) if it
        is alive or on another host (where it cannot be checked); None if there is no lock or
        its process has ended."""
        try:
            holder = json.loads((self.path / LOCK_FILE).read_text(encoding="utf-8"))
            pid, host = int(holder["pid"]), str(holder["host"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # Damaged (its writer died mid-write): stale.
        if host != socket.gethostname():
            return holder
        return holder if _process_alive(pid, holder.get("start")) else None

    def check_unlocked(self) -> None:
        """Raises `RunDirectoryError` if a live process holds this run's lock."""
        holder = self.lock_holder()
        if holder is not None:
            raise RunDirectoryError(
                f"{self.path} is in use by another training process (pid {holder['pid']} on "
                f"host {holder['host']}, since {holder.get('since', '?')}); wait for it to end "
                f"or train into another directory (if that process is gone, delete "
                f"{self.path / LOCK_FILE})"
            )

    @contextlib.contextmanager
    def lock(self):
        """Holds the run directory for this process while the block runs: `train.lock` is
        created exclusively (pid, host, process start time); another process's live lock is a
        `RunDirectoryError`; a lock whose process has ended on this host is taken over (said on
        stderr). The lock is removed when the block ends."""
        self.path.mkdir(parents=True, exist_ok=True)
        file = self.path / LOCK_FILE
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "start": _process_start(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for _ in range(3):
            try:
                fd = os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self.check_unlocked()
                with contextlib.suppress(OSError):
                    stale = json.loads(file.read_text(encoding="utf-8"))
                    print(
                        f"keras-s2s: took over the lock of {self.path} from process "
                        f"{stale.get('pid')}, which has ended",
                        file=sys.stderr,
                    )
                file.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(me) + "\n")
            break
        else:
            self.check_unlocked()
            raise RunDirectoryError(f"Could not lock {self.path} ({file} keeps reappearing)")
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(file.read_text(encoding="utf-8")).get("pid") == me["pid"]:
                    file.unlink()

    def check_finished(self) -> None:
        """Raises `RunDirectoryError` if `run.json` says the run did not finish."""
        meta = self.metadata()
        status = meta.get("status", FINISHED)  # Runs written by hand have no status.
        if status == FINISHED:
            return
        detail = {
            "running": "it is still training, or was killed",
            "failed": f"training failed: {meta.get('error', 'see its log')}",
            "interrupted": "training was interrupted",
        }.get(status, status)
        epoch = f", epoch {meta['checkpoint_epoch']}" if "checkpoint_epoch" in meta else ""
        checkpoint = (
            f"its last checkpoint ({MODEL_FILE}{epoch}) can be used with --allow-unfinished "
            "(allow_unfinished=True)"
            if self.model_path.is_file()
            else "it saved no model"
        )
        raise RunDirectoryError(
            f"Run directory {self.path} is not a finished run (status '{status}': {detail}); "
            f"{checkpoint}"
        )

    def load_tokenizers(self):
        """Loads both tokenizers and checks them against the hashes recorded at training."""
        from keras_s2s.tokenizers import load_tokenizer  # Lazy: start-up time (TensorFlow).

        loaded = {}
        entries = {side: self.entry(side) for side in ("source", "target")}
        for entry in entries.values():
            file = entry["file"]
            if file not in loaded:
                tokenizer = load_tokenizer(self._require(file))
                if tokenizer.fingerprint() != entry["sha256"]:
                    raise RunDirectoryError(
                        f"{self.path / file} changed since training (sha256 mismatch): the "
                        "model's ids would not match its vocabulary"
                    )
                loaded[file] = tokenizer
        return loaded[entries["source"]["file"]], loaded[entries["target"]["file"]]

    def load_model(self, allow_unfinished: bool = False, dtype: str | None = None):
        """Loads `model.keras` for inference (not compiled: no optimizer, loss or metrics); a
        run that did not finish needs `allow_unfinished=True`.

        The model computes under the dtype policy it was trained with (`training.precision`);
        `dtype` (e.g. "float32") rebuilds it under another one, with the same weights."""
        # Lazy imports, for start-up time (the command line reads run directories before it
        # needs Keras).
        import keras

        from keras_s2s.models import MODELS

        if not allow_unfinished:
            self.check_finished()
        file = self._require(MODEL_FILE)
        size = file.stat().st_size
        try:
            with zipfile.ZipFile(file) as archive:
                names = set(archive.namelist())
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise RunDirectoryError(
                f"{file} is damaged ({size} bytes, not a complete .keras archive: {e})"
            ) from None
        missing = {"config.json", "model.weights.h5"} - names
        if damaged or missing:
            problem = f"corrupt member {damaged}" if damaged else f"missing {sorted(missing)}"
            raise RunDirectoryError(f"{file} is damaged ({size} bytes, {problem})")
        # Looking the family up imports it (an installed plugin's too), which registers the
        # classes the file names with Keras.
        family = self.config()["model"]["type"]
        if family in MODELS:
            MODELS[family]
        model = keras.saving.load_model(file, compile=False)
        if dtype is not None and model.dtype_policy.name != keras.dtype_policies.get(dtype).name:
            model = model.copy(dtype=dtype)
        return model


def config_differences(stored: dict, config: dict) -> list[str]:
    """The dotted keys whose values differ between a stored config and `config` (as JSON)."""

    def flat(value, prefix=""):
        if isinstance(value, dict):
            items = {}
            for key, inner in value.items():
                items.update(flat(inner, f"{prefix}{key}."))
            return items
        return {prefix[:-1]: value}

    a, b = flat(stored), flat(json.loads(json.dumps(config, default=str)))
    return sorted(key for key in a.keys() | b.keys() if a.get(key, None) != b.get(key, None))


def backed_up_epochs(backup_dir: str | os.PathLike) -> int:
    """The epochs a `keras.callbacks.BackupAndRestore` backup in `backup_dir` holds (0: none),
    from its `training_metadata.json`."""
    path = Path(backup_dir) / "training_metadata.json"
    try:
        return int(json.loads(path.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _process_start(pid: int) -> int | None:
    """The start time of process `pid` in clock ticks since boot (Linux's /proc), which tells
    a process from a later one that reuses its pid; None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _process_alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # Another user's process: alive.
    return start is None or _process_start(pid) in (None, start)
