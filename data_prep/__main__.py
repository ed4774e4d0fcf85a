"""Command line of the dataset converters (``python -m data_prep <command> ...``, via ``fire``).

Commands::

    acdc       --root RAW --out OUT [--crop_size 128] [--seed 0] [--split 0.75,0.05,0.2]
    mnms       --root RAW --out OUT [--csv FILE] [--crop_size 128] [--seed 0] [--split 0.75,0.05,0.2]
    synthetic  acdc|mnms --out RAW [--num_subjects 10] [--size 144,160] [--slices 5] [--frames 10]
               [--seed 0] [--num_unlabelled 1]
    lumir      --root RAW --out OUT [--num_pairs N] [--seed 0] [--absolute_paths] [--check_data True]
               [--num_workers 4] [--dataset_json FILE]
    oasis      --root RAW --out OUT [--layout auto|learn2reg|neurite] [--variant seg35|seg4|seg24]
               [--num_pairs N] [--seed 0] [--num_val 20] [--num_test 0] [--absolute_paths]
               [--check_data True] [--num_workers 4] [--dataset_json FILE]
    synthetic  lumir|oasis RAW [--num_subjects 10] [--num_val N] [--num_test 0] [--size 32,40,36|full]
               [--layout learn2reg|neurite] [--seed 0] [--annotations True]

``acdc`` / ``mnms`` / ``lumir`` / ``oasis`` are ``prepare_acdc`` / ``prepare_mnms`` / ``prepare_lumir`` /
``prepare_oasis`` (their arguments and help are those functions'); they print the path of the written
``datalist.json``;
``synthetic`` prints the dataset root it wrote, ready for the matching converter.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monai_ext.errors import report_input_errors
from monai_ext.options import check_option, flag

__all__ = ["synthetic", "main"]


def synthetic(
    dataset: str,
    out: str,
    num_subjects: int = 10,
    size: int | str | Sequence[int] | None = None,
    slices: int = 5,
    frames: int = 10,
    seed: int = 0,
    num_unlabelled: int = 1,
    num_val: int | None = None,
    num_test: int = 0,
    layout: str = "learn2reg",
    annotations: bool = True,
) -> str:
    """Write a tiny synthetic ACDC, M&Ms, LUMIR or OASIS in the distributed layout.

    Args:
        dataset: ``acdc``, ``mnms``, ``lumir`` or ``oasis``.
        out: dataset root to write.
        num_subjects: labelled subjects (LUMIR: training images).
        size: ACDC / M&Ms: in-plane size ``X,Y`` (default 144,160); LUMIR / OASIS: the array shape
            ``X,Y,Z`` of the volumes (default small, 32,40,36 for RAS layouts) or ``full``.
        slices: ACDC / M&Ms: short-axis slices per volume.
        frames: ACDC / M&Ms: frames of the cine sequence.
        seed: seed of everything random.
        num_unlabelled: M&Ms only: extra subjects without ground truth (``Training/Unlabeled``).
        num_val: LUMIR: validation images (default 6); Learn2Reg OASIS: subjects of
            ``registration_val`` (default 4).
        num_test: Learn2Reg OASIS: unlabelled ``imagesTs`` subjects of ``registration_test``.
        layout: OASIS: ``learn2reg`` or ``neurite``.
        annotations: LUMIR: write ``labelsVal`` / ``landmarksVal`` for the validation images.
    """
    name = str(dataset).lower().replace("&", "n").replace("-", "_")
    check_option("dataset", name, ("acdc", "mnms", "lumir", "oasis", "neurite_oasis"))
    if name in ("acdc", "mnms"):
        from data_prep.synthetic import make_synthetic_acdc, make_synthetic_mnms

        kwargs = dict(
            num_subjects=num_subjects,
            size=(144, 160) if size is None else size,
            slices=slices,
            frames=frames,
            seed=seed,
        )
        if name == "acdc":
            return str(make_synthetic_acdc(out, **kwargs))
        return str(make_synthetic_mnms(out, num_unlabelled=num_unlabelled, **kwargs))
    if name in ("lumir", "oasis", "neurite_oasis"):
        from data_prep.synthetic_brain import make_synthetic_lumir, make_synthetic_oasis

        if name == "lumir":
            return str(
                make_synthetic_lumir(
                    out,
                    num_train=num_subjects,
                    num_val=6 if num_val is None else num_val,
                    size=size,
                    seed=seed,
                    annotations=annotations,
                )
            )
        return str(
            make_synthetic_oasis(
                out,
                layout="neurite" if name == "neurite_oasis" else layout,
                num_subjects=num_subjects,
                num_val=4 if num_val is None else num_val,
                num_test=num_test,
                size=size,
                seed=seed,
            )
        )


def _printing_path(convert: Callable[..., Path]) -> Callable[..., str]:
    """``convert`` returning its path as text, so that ``fire`` prints it; ``fire`` reads the
    signature and docstring of ``convert`` itself (``functools.wraps``)."""

    @functools.wraps(convert)
    def command(*args: Any, **kwargs: Any) -> str:
        return str(convert(*args, **kwargs))

    return command


def _pop_debug(argv: list[str]) -> bool:
    """Remove ``--debug [true|false]`` / ``--debug=...`` from ``argv``; return its value."""
    debug = False
    for i, arg in enumerate(argv):
        if arg == "--debug" or arg.startswith("--debug="):
            value = arg.partition("=")[2] if "=" in arg else None
            if value is None and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value = argv.pop(i + 1)
            argv.pop(i)
            return flag(True if value is None else value, "debug")
    return debug


def main() -> None:
    """Entry point: log INFO messages to stderr and dispatch with ``fire`` to the converters.

    A problem with the dataset (a converter's ``ValueError`` / ``OSError``, which name the file)
    ends with one line ``error: <message>`` and exit status 1; ``--debug true`` shows the traceback.
    """
    import fire

    from data_prep import prepare_acdc, prepare_lumir, prepare_mnms, prepare_oasis

    # the converters raise ValueError / OSError only for problems in the user's data
    report_input_errors(debug=_pop_debug(sys.argv), user_errors=(ValueError, OSError))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {"acdc": prepare_acdc, "mnms": prepare_mnms, "lumir": prepare_lumir, "oasis": prepare_oasis}
    fire.Fire(
        {**{name: _printing_path(f) for name, f in commands.items()}, "synthetic": synthetic},
        name="python -m data_prep",
    )


if __name__ == "__main__":
    main()
