#!/usr/bin/env bash
# Publish the models that scripts/demo.sh trains, with the figures it measured, into a zoo folder:
#   <ZOO_DIR>/<bundle>_v<version>.zip, <bundle>_v<version>_model.pt, model_info.json, wheels/
# These are models trained on SYNTHETIC stand-ins (data_prep synthetic ...), for trying the zoo,
# MONAI Label and the bundles' commands with real files; they are not models of real anatomy.
#   DEMO_OUT  the demo's output folder (default demo_output; run ./scripts/demo.sh first)
#   ZOO_DIR   the zoo folder to write (default zoo)
#   BASE_URL  the URL that will serve ZOO_DIR (default: its file:// URI); e.g. a GitHub release:
#             https://github.com/<org>/<repo>/releases/download/<tag>
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[[ "$VENV" == /* ]] || VENV="$PWD/$VENV"
export PATH="$VENV/bin:$PATH"  # the project's virtual environment (scripts/install.sh)
OUT=${DEMO_OUT:-demo_output}
ZOO=${ZOO_DIR:-zoo}
URL=(); [[ -n "${BASE_URL:-}" ]] && URL=(--base_url "$BASE_URL")
for needed in gsmorph_models/model.pt gradicon_models/model.pt dio_models/model.pt; do
    [[ -f "$OUT/$needed" ]] || { echo "$OUT/$needed is missing: run ./scripts/demo.sh first" >&2; exit 1; }
done

python3 -m monai_ext.zoo package bundles/gsmorph_cardiac --weights "$OUT/gsmorph_models/model.pt" --version 0.1.0 \
    --changelog "weights trained by scripts/demo.sh on synthetic ACDC-layout data (10 epochs of batch 4, lr 6.25e-4); a pipeline model, not for real scans" \
    --metrics "$OUT/gsmorph_eval/metrics_summary.csv" \
    --evaluation_data "synthetic ACDC-layout test split (8 slice pairs), scripts/demo.sh" --zoo_dir "$ZOO" "${URL[@]}"

python3 -m monai_ext.zoo package bundles/gradicon_brain --weights "$OUT/gradicon_models/model.pt" --version 0.1.0 \
    --changelog "2-D weights trained by scripts/demo.sh on synthetic neurite-OASIS-layout slices (Stage1 60 + Stage2 20 iterations of batch 8 at 80x80, lr 5e-4); a pipeline model, not for real scans" \
    --metrics "$OUT/gradicon_eval/direct/metrics_summary.csv" \
    --evaluation_data "synthetic neurite-OASIS-layout validation slices, scripts/demo.sh" --zoo_dir "$ZOO" "${URL[@]}" \
    --overrides '{"spatial_dims": 2, "image_size": [80, 80], "dataset_name": "oasis"}' \
    --metadata_updates '{"network_data_format": {"inputs": {"image": {"spatial_shape": [80, 80]}}, "outputs": {"pred": {"num_channels": 2, "spatial_shape": [80, 80], "channel_def": {"0": "displacement along array axis 0 (voxels)", "1": "displacement along array axis 1 (voxels)"}}}}}'

python3 -m monai_ext.zoo package bundles/dio_brain --weights "$OUT/dio_models/model.pt" --version 0.1.0 \
    --changelog "UNet features (channels 8,8,16,16; 8 feature channels) trained by scripts/demo.sh on synthetic Learn2Reg-OASIS-layout data (80 iterations, Adam diffeomorphic solver at 30/20/10); a pipeline model, not for real scans" \
    --metrics "$OUT/dio_eval/trained_solver/metrics_summary.csv" \
    --evaluation_data "synthetic Learn2Reg-OASIS-layout validation pairs (2), 60/40/20 solver iterations, scripts/demo.sh" \
    --zoo_dir "$ZOO" "${URL[@]}" --overrides '{"feature_network": "unet", "unet_channels": [8, 8, 16, 16], "feature_channels": 8}'

# the project itself, which the bundles' configs import (metadata: required_packages_version)
python3 -m pip wheel --quiet --no-deps --wheel-dir "$ZOO/wheels" .
python3 -m monai_ext.zoo list --index "$ZOO/model_info.json"
