"""Ending a command cleanly on SIGINT and SIGTERM.

SIGTERM is what a scheduler, `timeout`, Docker or Kubernetes sends to stop a process; its
default action ends the process at once, so no `finally` block, no cleanup and no status file
is written. Inside `signals_raise()` both signals raise `Interrupted` instead (cleanups run:
an export removes its staging folders). Inside `GracefulStop()` the first signal is only
recorded and the code stops at its next safe point (`check()`: training stops at the end of
the current batch); a second signal raises at once.

A raised `Interrupted` can be lost: Python ignores an exception raised while it runs a
finalizer (`__del__`) or a callback, and a signal may arrive just then. So the signals received
inside `signals_raise()` are also recorded: `raise_if_interrupted()`, called before a step that
cannot be undone (renaming an export into place), and the block's end raise for a signal whose
exception was lost.

Handlers can only be set in the main thread; elsewhere both helpers change nothing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A command stopped by SIGINT or SIGTERM. `exit_code` is the shell's 128 + signal
    number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum: int, message: str = ""):
        self.signum = int(signum)
        self.signal_name = signal.Signals(self.signum).name
        super().__init__(message or f"stopped by {self.signal_name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def _handlers(handler):
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _tracing() -> bool:
    """Whether TensorFlow is tracing a function in this thread (never imports it)."""
    tf = sys.modules.get("tensorflow")
    return bool(tf is not None and hasattr(tf, "inside_function") and tf.inside_function())


#: The signals received inside the current `signals_raise()` block.
_received: list[int] = []


def _raise(signum, frame):
    del frame
    _received.append(signum)
    raise Interrupted(signum)


def raise_if_interrupted() -> None:
    """Raises `Interrupted` if a signal arrived inside the current `signals_raise()` block
    (its exception may have been lost, see the module)."""
    if _received:
        raise Interrupted(_received[-1])


@contextlib.contextmanager
def signals_raise():
    """Within the block, SIGINT and SIGTERM raise `Interrupted` at once (and, if that
    exception was lost, at the block's end)."""
    _received.clear()
    try:
        with _handlers(_raise):
            yield
            raise_if_interrupted()
    finally:
        _received.clear()


def ignore_signals() -> None:
    """From now on SIGINT and SIGTERM are ignored (main thread only): for a command that is
    already ending on a signal. A signal Python has received but not yet handled (a second
    Ctrl-C, handled only after the handlers in force when it came were restored) would
    otherwise raise `KeyboardInterrupt` in the exit path and kill the process by SIGINT
    (exit -2, no status line); an ignored one is dropped."""
    if threading.current_thread() is not threading.main_thread():
        return
    for _ in range(len(SIGNALS) + 1):  # A pending signal may raise while handlers change.
        try:
            for s in SIGNALS:
                signal.signal(s, signal.SIG_IGN)
            return
        except KeyboardInterrupt:
            continue


@contextlib.contextmanager
def deferred():
    """Within the block, SIGINT and SIGTERM wait (blocked, then delivered when it ends), so a
    status file being written is not cut short by a second signal."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class GracefulStop:
    """`with GracefulStop() as stop:` records the first SIGINT/SIGTERM (`stop.signum`) and
    says on stderr that the work stops at its next safe point; `stop.check()`, called at those
        points, then raises `Interrupted`. A second signal raises `Interrupted` at once (while
    TensorFlow traces a function, at the next safe point instead); if that exception is lost
    or replaced by another error in the code it interrupts, the block still ends with
    `Interrupted` (chained to that error).

    Args:
        what: how the message names the next safe point.
    """

    def __init__(self, what: str = "the end of the current batch"):
        self.what = what
        self.signum: int | None = None
        self.forced: int | None = None  # the second signal, which raised at once
        self._context = None

    def _handler(self, signum, frame):
        del frame
        if self.signum is not None:
            self.forced = signum
            if _tracing():
                # An exception raised inside TensorFlow's tracing can be re-raised as another
                # error or crash the process (SIGSEGV, seen under load): the stop waits for
                # the next safe point, the end of the batch being traced.
                return
            raise Interrupted(signum)
        self.signum = signum
        print(
            f"keras-s2s: {signal.Signals(signum).name} received: stopping at {self.what} "
            "(send it again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def check(self) -> None:
        """Raises `Interrupted` if a signal came."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    def __enter__(self):
        self._context = _handlers(self._handler)
        self._context.__enter__()
        return self

    def __exit__(self, kind, value, traceback):
        self._context.__exit__(kind, value, traceback)
        if self.forced is not None and not isinstance(value, Interrupted):
            # The second signal's `Interrupted` was lost or turned into another error by the
            # code it cut short (TensorFlow's tracing re-raises what it catches as a
            # TypeError): the block was still stopped by that signal.
            raise Interrupted(self.forced) from value
        return False
