"""Package a bundle and its trained weights as ``<name>_v<version>.zip`` and publish it in a zoo folder.

The zip holds ``<name>/`` with the bundle's configs, model card and licence, the weights as
``models/model.pt``, and a ``large_files.yml`` that points at the same weights published beside the
zip (URL + sha256), so both ``python -m monai.bundle download --url ...`` (weights inside) and the
model zoo's large-file check (weights fetched and hashed) work. ``configs/metadata.json`` gets the
version, a changelog entry, the weights' checksum and the evaluation figures measured for this model;
packaging is refused without them (never a 0.0 placeholder). The zoo folder's ``model_info.json``
index gains the entry; a version already published is refused.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import zipfile
from pathlib import Path

import yaml

from monai_ext.handlers.method_comparison import read_metrics_summary
from monai_ext.io.atomic import atomic_write_path
from monai_ext.zoo.checksums import sha256_file
from monai_ext.zoo.index import read_index, update_index

__all__ = ["package_bundle", "evaluation_from_csv"]

# what a bundle folder may hold besides the published files: outputs of local runs are not packaged
_PACKAGED = ("configs", "docs", "LICENSE", "README.md")


def _merge(target: dict, updates: dict) -> None:
    """Merge ``updates`` into ``target`` in place: nested dicts key by key, other values replaced."""
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def evaluation_from_csv(path: str | Path, method: str | None = None) -> dict[str, float]:
    """The mean row of one method in a ``metrics_summary.csv`` written by the bundles'
    ``RegistrationMetricsHandler`` (read by ``monai_ext.handlers.read_metrics_summary``):
    ``{"mean_dice": ..., "mean_hd95": ..., "njd_percent": ...}`` (the columns that hold numbers).
    ``method`` defaults to the one method that is not ``Initial``."""
    stats = read_metrics_summary(path)
    methods = [name for name in stats if name != "Initial"]
    if method is None:
        if len(methods) != 1:
            raise ValueError(f"{path}: give the method to publish, the summary lists {methods}.")
        method = methods[0]
    if method not in stats:
        raise ValueError(f"{path}: no mean row for method {method!r} (it lists {methods}).")
    names = {"Dice_mean": "mean_dice", "HD95_mean": "mean_hd95", "NJD": "njd_percent", "MSE": "mse", "TRE": "tre"}
    means = {key: stats[method][column][0] for column, key in names.items() if column in stats[method]}
    figures = {key: value for key, value in means.items() if math.isfinite(value)}
    if "mean_dice" not in figures and "tre" not in figures:
        raise ValueError(f"{path}: method {method!r} has no Dice or TRE to publish.")
    return figures


def package_bundle(
    bundle_dir: str | Path,
    weights: str | Path,
    version: str,
    changelog: str,
    evaluation: dict[str, float],
    evaluation_data: str,
    zoo_dir: str | Path,
    base_url: str = "",
    overwrite: bool = False,
    overrides: dict | None = None,
    metadata_updates: dict | None = None,
) -> Path:
    """Write ``<zoo_dir>/<name>_v<version>.zip`` and ``<name>_v<version>_model.pt``, and index them.

    Args:
        bundle_dir: a bundle folder of this repository (its name is the bundle's name).
        weights: the trained state dict (``model.pt`` of a training run).
        version: ``MAJOR.MINOR.PATCH``.
        changelog: what this version is (e.g. how it was trained); required.
        evaluation: figures measured for this model (:func:`evaluation_from_csv`); required.
        evaluation_data: what they were measured on (dataset, split, number of pairs).
        zoo_dir: the published folder (zips, weights, ``model_info.json``).
        base_url: the URL that serves ``zoo_dir`` (default: its ``file://`` URI).
        overwrite: replace an already published version.
        overrides: config values the weights were trained with (e.g. a smaller feature network),
            written into every config of the zip that has the key, and listed in the metadata as
            ``config_overrides``, so that the downloaded bundle runs them without arguments.
        metadata_updates: merged into ``metadata.json`` key by key (nested dicts merged, other
            values replaced), e.g. the ``network_data_format`` of a 2-D configuration.
    """
    bundle_dir, weights, zoo_dir = Path(bundle_dir), Path(weights), Path(zoo_dir)
    name = bundle_dir.name
    metadata_path = bundle_dir / "configs" / "metadata.json"
    if not metadata_path.is_file():
        raise FileNotFoundError(f"{metadata_path}: missing; {bundle_dir} is not a bundle.")
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: the weights to publish do not exist.")
    if not all(part.isdigit() for part in str(version).split(".")) or str(version).count(".") != 2:
        raise ValueError(f"version must be MAJOR.MINOR.PATCH, got {version!r}.")
    if not str(changelog).strip():
        raise ValueError("changelog is required: say what this version is and how it was trained.")
    figures = {k: float(v) for k, v in dict(evaluation).items()}
    if not figures or not all(math.isfinite(v) for v in figures.values()) or not any(figures.values()):
        raise ValueError(f"evaluation must hold the figures measured for this model, got {figures}.")
    if not str(evaluation_data).strip():
        raise ValueError("evaluation_data is required: say what the figures were measured on.")
    zoo_dir.mkdir(parents=True, exist_ok=True)
    base_url = (base_url or zoo_dir.resolve().as_uri()).rstrip("/")
    key = f"{name}_v{version}"
    index_path = zoo_dir / "model_info.json"
    if index_path.exists() and key in read_index(index_path) and not overwrite:
        raise ValueError(f"{index_path}: {key} is already published; give a new version.")
    weights_sha = sha256_file(weights)
    weights_name = f"{key}_model.pt"
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / name
        stage.mkdir()
        for item in _PACKAGED:
            source = bundle_dir / item
            if source.is_dir():
                shutil.copytree(source, stage / item)
            elif source.is_file():
                shutil.copy2(source, stage / item)
        overrides = dict(overrides or {})
        unused = set(overrides)
        for config_path in sorted((stage / "configs").glob("*.json")):
            if config_path.name == "metadata.json":
                continue
            config = json.loads(config_path.read_text())
            changed = {k: v for k, v in overrides.items() if k in config}
            if changed:
                config.update(changed)
                config_path.write_text(json.dumps(config, indent=4) + "\n")
                unused -= set(changed)
        if unused:
            raise ValueError(f"overrides {sorted(unused)} name no key of the configs of {bundle_dir}.")
        (stage / "models").mkdir()
        shutil.copy2(weights, stage / "models" / "model.pt")
        large_files = {
            "large_files": [
                {
                    "path": "models/model.pt",
                    "url": f"{base_url}/{weights_name}",
                    "hash_val": weights_sha,
                    "hash_type": "sha256",
                }
            ]
        }
        (stage / "large_files.yml").write_text(yaml.safe_dump(large_files, sort_keys=False))
        metadata = json.loads(metadata_path.read_text())
        metadata["version"] = str(version)
        history = {k: v for k, v in metadata.get("changelog", {}).items() if k != str(version)}
        metadata["changelog"] = {str(version): str(changelog).strip(), **history}
        metadata["eval_metrics"] = figures
        metadata["eval_data"] = str(evaluation_data).strip()
        metadata["weights_sha256"] = weights_sha
        if overrides:
            metadata["config_overrides"] = overrides
        _merge(metadata, dict(metadata_updates or {}))
        (stage / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        zip_path = zoo_dir / f"{key}.zip"
        with atomic_write_path(zip_path) as tmp_zip:
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(stage.rglob("*")):
                    if path.is_file():
                        archive.write(path, Path(name) / path.relative_to(stage))
    with atomic_write_path(zoo_dir / weights_name) as tmp_weights:
        shutil.copy2(weights, tmp_weights)
    update_index(index_path, key, sha256_file(zip_path), f"{base_url}/{zip_path.name}")
    return zip_path
