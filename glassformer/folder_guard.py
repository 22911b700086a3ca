"""Which folders glassformer may write into, and a lock that keeps a second process out of a run.

A folder is written only when it is missing, empty, or a glassformer run being resumed; anything
else (someone's config.json and model.safetensors, a Hugging Face model, an earlier run) is
refused unless the user says `--overwrite`, which then replaces only the files glassformer writes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

from glassformer.errors import UserError

LOCK_FILE = ".glassformer.lock"
# What a run folder and an exported Hugging Face folder are made of: the entries --overwrite removes.
RUN_ENTRIES = ("config.json", "tokenizer.json", "source_tokenizer.json", "target_tokenizer.json",
               "model.safetensors", "metrics.jsonl", "checkpoint")
EXPORT_ENTRIES = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                  "tokenizer_config.json", "special_tokens_map.json")


def _contents(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE)


def is_glassformer_run(path: Path) -> bool:
    """Whether path holds a config.json written by glassformer for a run folder."""
    try:
        document = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and document.get("format") == "glassformer-run"


def check_output_folder(path: str | Path, flag: str = "--out", overwrite: bool = False,
                        entries: tuple[str, ...] = RUN_ENTRIES) -> Path:
    """Make sure path may be written as a new folder; UserError naming what is there when not.

    Args:
        flag: the option that named the folder, for the message.
        overwrite: the user asked to replace the folder's glassformer files (the others stay).
        entries: the files and folders glassformer writes there, removed when overwrite is set.
    """
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise UserError(f"{flag} {path}: a broken symbolic link")
        return path
    if not path.is_dir():
        raise UserError(f"{flag} {path}: is a file, not a folder")
    contents = _contents(path)
    if not contents:
        return path
    if not overwrite:
        shown = ", ".join(contents[:4]) + (f" and {len(contents) - 4} more" if len(contents) > 4 else "")
        if is_glassformer_run(path):
            what = "already holds a glassformer run"
        elif (path / "config.json").is_file():
            what = "holds another model's files"
        else:
            what = "is not empty"
        raise UserError(f"{flag} {path} {what} ({shown}); choose another folder, or add --overwrite to replace it")
    for name in entries:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _holder(lock: Path) -> int | None:
    try:
        return int(lock.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


class FolderLock:
    """Holds path/.glassformer.lock (with our pid) while a process writes the folder.

    A lock whose process is gone is stale and taken over; one held by a live process is a UserError.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = self.path / LOCK_FILE
        self.held = False

    def acquire(self) -> "FolderLock":
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path}: is a file, not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"{self.path}: cannot create the folder ({error.strerror})") from None
        for _ in range(3):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                pid = _holder(self.lock)
                if pid is not None and pid != os.getpid() and _alive(pid):
                    raise UserError(f"{self.path} is in use by process {pid} (lock file {self.lock}); "
                                    "wait for it to finish, or delete the lock file if that process is not glassformer")
                try:
                    self.lock.unlink()  # stale: its process has ended
                except FileNotFoundError:
                    pass
                continue
            except OSError as error:
                if error.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                    raise UserError(f"{self.path}: cannot write there ({error.strerror})") from None
                raise
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return self
        raise UserError(f"{self.path}: could not take the lock {self.lock}; another process keeps taking it")

    def release(self) -> None:
        if self.held and _holder(self.lock) == os.getpid():
            try:
                self.lock.unlink()
            except FileNotFoundError:
                pass
        self.held = False

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
