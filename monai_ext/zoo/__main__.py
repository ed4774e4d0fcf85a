"""``python -m monai_ext.zoo <command>``: publish trained bundles and get them back.

Commands::

    package   BUNDLE_DIR --weights model.pt --version 0.2.0 --changelog "..." --metrics metrics_summary.csv
              --evaluation_data "..." --zoo_dir zoo/ [--base_url https://...] [--method NAME]
              [--overrides '{"feature_network": "unet"}'] [--metadata_updates '{...}']
    list      --index URL_OR_PATH
    download  --name NAME --index URL_OR_PATH --bundle_dir DIR [--version V]
    verify    BUNDLE_DIR [--weights true]
"""

from __future__ import annotations

from monai_ext.options import flag
from monai_ext.zoo.download import download_bundle
from monai_ext.zoo.index import read_index, split_key
from monai_ext.zoo.package import evaluation_from_csv, package_bundle
from monai_ext.zoo.verify import verify_bundle

__all__ = ["main"]


def package(
    bundle_dir: str,
    weights: str,
    version: str,
    changelog: str,
    metrics: str,
    evaluation_data: str,
    zoo_dir: str,
    base_url: str = "",
    method: str = "",
    overrides: dict | None = None,
    metadata_updates: dict | None = None,
) -> None:
    """Publish a bundle with its trained weights and measured evaluation into a zoo folder."""
    evaluation = evaluation_from_csv(metrics, method or None)
    path = package_bundle(
        bundle_dir,
        weights,
        str(version),
        changelog,
        evaluation,
        evaluation_data,
        zoo_dir,
        base_url,
        overrides=overrides,
        metadata_updates=metadata_updates,
    )
    print(f"published {path} ({', '.join(f'{k} {v:.4g}' for k, v in evaluation.items())})")


def list_bundles(index: str) -> None:
    """Print the bundles and versions an index holds."""
    for key, entry in read_index(index).items():
        name, version = split_key(key)
        print(f"{name}\t{version}\t{entry['source']}")


def download(name: str, index: str, bundle_dir: str, version: str = "") -> None:
    """Download a bundle by name (latest version unless given), every checksum verified."""
    path = download_bundle(name, index, bundle_dir, str(version) if version else None)
    print(f"downloaded {path}")


def verify(bundle_dir: str, weights: bool | str = True) -> None:
    """The model zoo's bundle checks, offline."""
    for check in verify_bundle(bundle_dir, weights=flag(weights, "weights")):
        print(f"passed: {check}")


def main() -> None:
    import fire

    fire.Fire(
        {"package": package, "list": list_bundles, "download": download, "verify": verify},
        name="python -m monai_ext.zoo",
    )


if __name__ == "__main__":
    main()
