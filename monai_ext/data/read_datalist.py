"""Reading a MONAI datalist JSON with errors that name the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

from monai.data import load_decathlon_datalist

from monai_ext.errors import InputError, InputFileNotFoundError

__all__ = ["read_datalist"]


def read_datalist(
    data_list_file_path: str | Path, data_list_key: str = "training", base_dir: str | Path | None = None
) -> list[dict]:
    """``monai.data.load_decathlon_datalist`` (same arguments), or one :class:`InputError` naming the
    file when it is missing, not valid JSON (with the line and column), lacks ``data_list_key`` or
    holds entries that are not objects of file paths."""
    path = Path(data_list_file_path)
    if not path.is_file():
        raise InputFileNotFoundError(f"datalist {path} does not exist.")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(
            f"datalist {path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        )
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"datalist {path} cannot be read: {error}.") from error
    if not isinstance(content, dict):
        raise InputError(
            f"datalist {path} must hold a JSON object with lists of pairs, not a {type(content).__name__}."
        )
    if data_list_key not in content:
        raise InputError(f"datalist {path} has no {data_list_key!r} list (it has {', '.join(map(repr, content))}).")
    entries = content[data_list_key]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"datalist {path}: {data_list_key!r} must be a list of objects mapping keys to files.")
    return load_decathlon_datalist(
        str(path), data_list_key=data_list_key, base_dir=None if base_dir is None else str(base_dir)
    )
