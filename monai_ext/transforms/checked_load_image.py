"""MONAI's ``LoadImaged`` with one clear error naming the file that cannot be read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from monai.transforms import LoadImaged

from monai_ext.errors import InputError, InputFileNotFoundError

__all__ = ["CheckedLoadImaged"]


def _reason(error: BaseException) -> str:
    """The innermost cause's first line, shortened: what the reader said went wrong."""
    while error.__cause__ is not None:
        error = error.__cause__
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return first if len(first) <= 160 else first[:157] + "..."


class _NamingLoader:
    """Wraps a ``LoadImage``: missing, empty and unreadable files raise an :class:`InputError`
    naming the file (``LoadImage`` raises ``RuntimeError`` / ``OptionalImportError`` listing every
    reader it tried, and a truncated ``.nii.gz`` ends in ``EOFError`` without a file name)."""

    def __init__(self, loader: Callable) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __call__(self, filename: Any, reader: Any = None) -> Any:
        names = [filename] if isinstance(filename, (str, Path)) else list(filename)
        for name in names:
            path = Path(name)
            if not path.exists():
                raise InputFileNotFoundError(f"{path} does not exist.")
            if path.is_file() and path.stat().st_size == 0:
                raise InputError(f"{path} is empty.")
        try:
            return self.loader(filename, reader)
        except Exception as error:
            raise InputError(f"{filename} cannot be read as an image: {_reason(error)}") from error


class CheckedLoadImaged(LoadImaged):
    """``monai.transforms.LoadImaged`` (same arguments) whose errors name the file and the problem:
    does not exist, is empty, or cannot be read (truncated, not an image format the readers know)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loader = _NamingLoader(self._loader)  # type: ignore[assignment]
