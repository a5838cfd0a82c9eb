"""Run exports on Lava: Processes and their models (``processes/``, incl. the network Process), the
op -> Process bindings (``bindings``), the run helper (``run``) and test-set evaluation (``evaluate``).

Import the modules explicitly; this package stays import-light.
"""
import multiprocessing


def _reopen_start_method() -> None:
    """lava-nc 0.10 calls ``multiprocessing.set_start_method('fork')`` when it is imported, which raises
    "context has already been set" once anything has fixed the start method, even to 'fork': tqdm's first
    progress bar does (it creates a multiprocessing lock), so building event frames before importing Lava
    broke the import. Re-opening a 'fork' choice changes nothing; any other choice Lava cannot run under."""
    method = multiprocessing.get_start_method(allow_none=True)
    if method == "fork":
        multiprocessing.set_start_method(None, force=True)
    elif method is not None:
        raise RuntimeError(f"Lava runs its processes with the 'fork' start method, but this interpreter set "
                           f"multiprocessing's start method to {method!r} before importing Lava")


_reopen_start_method()
