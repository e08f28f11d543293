"""What `headroom_read` and `headroom_run` fetch for the MCP server, bounded: a file's text
(regular files only: a device or FIFO would fill memory or never end) and a shell command's
merged output in its own process group (killed as a group on timeout, never held open by a
background child). Errors are ConfigErrors whose messages tell the model what to do instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

from headroom.errors import ConfigError

MAX_BYTES = 32 << 20
"""The most a file read or a command's output may hold; beyond it the tools refuse or cut."""
BINARY_SNIFF = 8192
"""Leading bytes searched for a NUL, the sign of a binary file (as git and grep do)."""
PIPE_GRACE = 1.0
"""Seconds to wait for the output pipe to close once the shell has ended or been killed."""


def read_text(path: Path) -> str:
    """The file's text (undecodable bytes replaced); ConfigError says why it cannot be read."""
    try:
        # Non-blocking, so opening a FIFO does not wait for a writer; a device or FIFO is
        # refused before any read, as /dev/zero would fill memory and a FIFO never end.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            mode = os.fstat(descriptor).st_mode
            if stat.S_ISDIR(mode):
                raise ConfigError(f"{path} is a directory; list it with headroom_run (ls {path})")
            if not stat.S_ISREG(mode):
                raise ConfigError(
                    f"{path} is not a regular file (a device, FIFO or socket); headroom_read "
                    f"reads files. Read from it with headroom_run (e.g. head -c 4096 {path})"
                )
            with open(descriptor, "rb", closefd=False) as file:
                data = file.read(MAX_BYTES + 1)  # bounded: a size from stat may be stale or 0
        finally:
            os.close(descriptor)
    except FileNotFoundError:
        raise ConfigError(
            f"no file at {path} (relative paths start in {Path.cwd()}); check the path"
        ) from None
    except PermissionError:
        raise ConfigError(f"permission denied reading {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"{path} is over the {MAX_BYTES:,} bytes headroom_read reads; "
            f"read part of it with headroom_run (e.g. sed -n '1,200p' {path})"
        )
    if b"\0" in data[:BINARY_SNIFF]:
        raise ConfigError(
            f"{path} is a binary file ({len(data):,} bytes); headroom_read reads text. "
            f"Inspect it with headroom_run (e.g. file {path})"
        )
    return data.decode("utf-8", errors="replace")


class Capture:
    """A command's merged output as read from its pipe: the first MAX_BYTES of it, how many
    bytes came in all, and whether the pipe was still open when the call returned."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.seen = 0
        self.open = True

    def drain(self, pipe: Any) -> None:
        """Reads the pipe to its end, keeping the first MAX_BYTES (the rest is read and
        dropped, so the command is never blocked on a full pipe)."""
        with pipe:
            for chunk in iter(lambda: pipe.read1(1 << 16), b""):
                if self.seen < MAX_BYTES:
                    self.chunks.append(chunk[: MAX_BYTES - self.seen])
                self.seen += len(chunk)
        self.open = False


def execute(command: str, cwd: Path, timeout: float) -> tuple[Capture, int, bool]:
    """Runs command in a shell of its own process group: its output, its exit code and
    whether it timed out and was killed."""
    shell = shutil.which("bash") or "/bin/sh"
    try:
        process = subprocess.Popen(
            [shell, "-c", command],
            cwd=cwd,
            stdin=subprocess.DEVNULL,  # the server's stdin is the protocol channel
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigError(f"could not start {shell}: {exc.strerror}") from None
    assert process.stdout is not None
    capture = Capture()
    reader = threading.Thread(target=capture.drain, args=(process.stdout,), daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):  # it may have ended just now
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # Background children (`server &`) may hold the pipe open for as long as they run: once
    # the shell has ended, their output is read for a moment, not waited for.
    reader.join(PIPE_GRACE)
    return capture, process.returncode, timed_out
