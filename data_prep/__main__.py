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

``acdc`` / ``mnms`` / ``lumir`` / ``oasis`` print the path of the written ``datalist.json``;
``synthetic`` prints the dataset root it wrote, ready for the matching converter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

__all__ = ["acdc", "mnms", "lumir", "oasis", "synthetic", "main"]

_SPLIT = "0.75,0.05,0.2"


def acdc(root: str, out: str, crop_size: int = 128, seed: int = 0, split: str | Sequence[float] = _SPLIT) -> str:
    """Convert ACDC (``ROOT/training/patientNNN/...``) to ES->ED slice pairs and OUT/datalist.json.

    Args:
        root: ACDC folder: the one holding ``patientNNN`` folders, or ``training``/``testing``,
            or ``database/training``/``database/testing``.
        out: output folder (``images/``, ``labels/``, ``datalist.json``).
        crop_size: side of the in-plane crop centred on the heart (GSMorph: 128).
        seed: seed of the patient-level split.
        split: train,validation,test fractions (GSMorph: 0.75,0.05,0.2).
    """
    from data_prep.acdc import prepare_acdc

    return str(prepare_acdc(root, out, crop_size=crop_size, seed=seed, split=split))


def mnms(
    root: str,
    out: str,
    csv: str | None = None,
    crop_size: int = 128,
    seed: int = 0,
    split: str | Sequence[float] = _SPLIT,
) -> str:
    """Convert M&Ms 2020 (``ROOT/Training/Labeled/<code>/<code>_sa*.nii.gz`` + CSV) likewise.

    Args:
        root: M&Ms folder holding ``Training``, ``Validation``, ``Testing`` and the CSV.
        out: output folder.
        csv: the information CSV (0-based ED/ES); found in ``root`` when not given.
        crop_size, seed, split: as for ``acdc``.
    """
    from data_prep.mnms import prepare_mnms

    return str(prepare_mnms(root, out, csv=csv, crop_size=crop_size, seed=seed, split=split))


def lumir(
    root: str,
    out: str,
    num_pairs: int | None = None,
    seed: int = 0,
    absolute_paths: bool = False,
    check_data: bool = True,
    num_workers: int = 4,
    dataset_json: str | None = None,
) -> str:
    """Check LUMIR (``ROOT/LUMIR_dataset.json``, ``imagesTr``, ``imagesVal``) and write OUT/datalist.json.

    Args:
        root: the LUMIR folder.
        out: output folder (only ``datalist.json``; it points at the original images).
        num_pairs: random inter-subject training pairs (default: one per training image).
        seed: seed of the training pairs.
        absolute_paths: write absolute paths instead of paths relative to ``out``.
        check_data: read every volume (NaN, 0..255 range); ``False``: headers only.
        num_workers: files read at a time.
        dataset_json: the dataset JSON when it is not ``ROOT/LUMIR_dataset.json``.
    """
    from data_prep.lumir import prepare_lumir

    return str(
        prepare_lumir(
            root,
            out,
            num_pairs=num_pairs,
            seed=seed,
            absolute_paths=absolute_paths,
            check_data=check_data,
            num_workers=num_workers,
            dataset_json=dataset_json,
        )
    )


def oasis(
    root: str,
    out: str,
    layout: str = "auto",
    variant: str = "seg35",
    num_pairs: int | None = None,
    seed: int = 0,
    num_val: int = 20,
    num_test: int = 0,
    absolute_paths: bool = False,
    check_data: bool = True,
    num_workers: int = 4,
    dataset_json: str | None = None,
) -> str:
    """Check OASIS (Learn2Reg ``OASIS_dataset.json`` or neurite-OASIS ``subjects.txt``) and write OUT/datalist.json.

    Args:
        root: the Learn2Reg OASIS or the neurite-OASIS folder.
        out: output folder (only ``datalist.json``; it points at the original files).
        layout: ``auto``, ``learn2reg`` or ``neurite``.
        variant: neurite-OASIS: ``seg35`` (3-D, 35 labels), ``seg4`` (3-D, 4 tissues), ``seg24`` (2-D slices).
        num_pairs: random inter-subject training pairs (default: one per training subject).
        seed: seed of the training pairs.
        num_val: neurite-OASIS: the last ``num_val`` subjects give the validation pairs.
        num_test: hold out this many further subjects as labelled test pairs.
        absolute_paths: write absolute paths instead of paths relative to ``out``.
        check_data: read every volume (NaN, label values, masks); ``False``: headers only.
        num_workers: files read at a time.
        dataset_json: Learn2Reg: the dataset JSON when it is not ``ROOT/OASIS_dataset.json``.
    """
    from data_prep.oasis import prepare_oasis

    return str(
        prepare_oasis(
            root,
            out,
            layout=layout,
            variant=variant,
            num_pairs=num_pairs,
            seed=seed,
            num_val=num_val,
            num_test=num_test,
            absolute_paths=absolute_paths,
            check_data=check_data,
            num_workers=num_workers,
            dataset_json=dataset_json,
        )
    )


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
    raise ValueError(f"dataset must be one of ('acdc', 'mnms', 'lumir', 'oasis'), got {dataset!r}")


def main() -> None:
    """Entry point: log INFO messages to stderr and dispatch with ``fire``."""
    import fire

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fire.Fire(
        {"acdc": acdc, "mnms": mnms, "lumir": lumir, "oasis": oasis, "synthetic": synthetic}, name="python -m data_prep"
    )


if __name__ == "__main__":
    main()
