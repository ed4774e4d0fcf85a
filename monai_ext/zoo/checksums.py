"""SHA-256 checksums of published files, and the error that names a file whose checksum is wrong."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["ChecksumError", "sha256_file", "check_file"]


class ChecksumError(ValueError):
    """A downloaded or packaged file does not have the checksum its index or bundle declares."""


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (weights may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: str | Path, expected: str, what: str = "") -> None:
    """Raise :class:`ChecksumError` naming ``path`` unless its SHA-256 is ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing{f' ({what})' if what else ''}.")
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path}: sha256 {actual} does not match {expected}{f' declared by {what}' if what else ''}; "
            "the file is damaged or was changed after publishing."
        )
