"""One converted tutorial in one fresh subprocess, with a timeout that always holds.

The child gets its own process group, and its output goes to files rather than pipes: on timeout
the whole group is killed (a tutorial that starts worker processes, as multi-chain MCMC does,
cannot keep the runner waiting on a pipe), and what it printed until then is kept.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.tutorial_runner.notebook_script import Script


@dataclass(frozen=True)
class RunResult:
    """What one run of one tutorial did.

    >>> RunResult(True, 1.5, 0, False, "out", "", None).status()
    'ok (1.5 s)'
    """

    ok: bool
    seconds: float
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str
    first_error: str | None

    def status(self) -> str:
        """``ok (12.3 s)``, ``failed (4.1 s)`` or ``timed out (600 s)``."""
        if self.timed_out:
            return f"timed out ({self.seconds:.0f} s)"
        return f"{'ok' if self.ok else 'failed'} ({self.seconds:.1f} s)"


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')


def first_error(stderr: str, script: Script | None = None, script_path: Path | None = None) -> str:
    """The exception that ended the run, and the code cell it came from when it is known.

    It is the first line of the last traceback's exception message; the cell is the one holding
    the innermost frame of that traceback that lies in the script.

    >>> err = 'Traceback (most recent call last):\\n  File "t.py", line 3, in <module>\\n' \\
    ...       "ModuleNotFoundError: No module named 'pyro.nn'\\n"
    >>> first_error(err, Script("a\\nb\\nc\\n", ((1, 1), (3, 2)), ()), Path("t.py"))
    "code cell 2: ModuleNotFoundError: No module named 'pyro.nn'"
    >>> first_error("Killed\\n")
    'Killed'
    """
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call")]
    if not starts:
        tail = [line for line in lines if line.strip()]
        return tail[-1].strip() if tail else "no error message"
    block = lines[starts[-1] + 1 :]
    message = next((line for line in block if line and not line[0].isspace()), "")
    cell = None
    if script is not None and script_path is not None:
        for line in block:
            frame = _FRAME.match(line)
            if frame and Path(frame["file"]).name == script_path.name:
                cell = script.cell_at(int(frame["line"]))
    message = message.strip() or "traceback without a message"
    return f"code cell {cell}: {message}" if cell is not None else message


def run_script(
    script_path: Path,
    *,
    python: str,
    path_entries: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    script: Script | None = None,
    arguments: Sequence[str] = (),
) -> RunResult:
    """Run ``python script_path *arguments`` with ``PYTHONPATH=path_entries`` in ``cwd``; no hang.

    >>> import sys, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "t.py"
    ...     _ = path.write_text("print(1.5)\\nraise ValueError('bad')\\n")
    ...     result = run_script(path, python=sys.executable, path_entries=[], cwd=Path(tmp),
    ...                         env={}, timeout=30)
    >>> result.ok, result.stdout, result.first_error
    (False, '1.5\\n', 'ValueError: bad')
    """
    environment = {**env, "PYTHONPATH": os.pathsep.join(path_entries)}
    out_path = cwd / f"{script_path.stem}.stdout"
    err_path = cwd / f"{script_path.stem}.stderr"
    start = time.perf_counter()
    timed_out = False
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            [python, str(script_path), *arguments],
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            returncode: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = None
    seconds = time.perf_counter() - start
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    ok = returncode == 0
    if ok:
        error = None
    elif timed_out:
        error = f"timed out after {timeout:.0f} s"
    else:
        error = first_error(stderr, script, script_path)
        if error == "no error message":
            error = f"exit status {returncode}"
    return RunResult(ok, seconds, returncode, timed_out, stdout, stderr, error)
