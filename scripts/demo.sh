#!/usr/bin/env bash
# Demo on synthetic data in the real dataset layouts, CPU friendly:
#   gsmorph:  synthetic ACDC -> data_prep -> short GSMorph training -> evaluation table + QC figures
#   gradicon: synthetic neurite-OASIS 2-D slices -> data_prep -> Stage1 + Stage2 in 2-D (the bundle's
#             --spatial_dims 2) -> evaluation without and with instance optimisation
#   dio:      synthetic Learn2Reg OASIS -> data_prep -> a short DIO training -> evaluation with the
#             training solver and a solver switched at test time (Table 2 layout), and intensities alone
#             -> inference on a pair whose moving image has another voxel size and array size
# Choose with DEMO_BUNDLES="gsmorph gradicon dio" (default: all). Outputs go to $DEMO_OUT (demo_output/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
VENV=${VENV:-.venv}
[[ "$VENV" == /* ]] || VENV="$PWD/$VENV"
export PATH="$VENV/bin:$PATH"  # the project's virtual environment (scripts/install.sh)
OUT=${DEMO_OUT:-demo_output}
BUNDLES=${DEMO_BUNDLES:-gsmorph gradicon dio}
rm -rf "$OUT"
mkdir -p "$OUT"

RUNS="$OUT/runs.tsv"  # one line per registration for the closing table (scripts/demo_summary.py)
record() {  # record NAME DATA METRICS_SUMMARY_CSV METHOD START_SECONDS
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$((SECONDS - $5))" >> "$RUNS"
}

show_tables() {  # print the results tables of an evaluation log
    grep -v -E "^\s*$|Loading dataset|instance optimisation" "$1" | sed -n '/Registration results/,/^[0-9]\{4\}-/p' | grep -v "^[0-9]\{4\}-"
}

if [[ " $BUNDLES " == *" gsmorph "* ]]; then
    B=bundles/gsmorph_cardiac
    EPOCHS=${DEMO_EPOCHS:-10}
    echo "== GSMorph 1/4: synthetic ACDC (distributed layout) -> $OUT/raw_acdc"
    python3 -m data_prep synthetic acdc "$OUT/raw_acdc" --num_subjects 10
    echo "== GSMorph 2/4: data_prep -> ES->ED slice pairs, 128x128 heart crops, 75/5/20 split -> $OUT/acdc"
    python3 -m data_prep acdc --root "$OUT/raw_acdc" --out "$OUT/acdc"
    START=$SECONDS
    LR=${DEMO_GSMORPH_LR:-6.25e-4}
    echo "== GSMorph 3/4: training, $EPOCHS epochs of batch 4 at lr $LR: the paper's lr 5e-3 for batch 32, scaled"
    echo "   linearly to batch 4 (the paper: 500 epochs of batch 32; model.pt is the best validation, never worse than the start)"
    python3 -m monai.bundle run --config_file "$B/configs/train.json" --bundle_root "$B" \
        --logging_file "$B/configs/logging.conf" --dataset_dir "$OUT/acdc" --ckpt_dir "$OUT/gsmorph_models" \
        --output_dir "$OUT/gsmorph_train" --num_epochs "$EPOCHS" --batch_size 4 --learning_rate "$LR" \
        --val_interval 5 --num_workers 0
    echo "== GSMorph 4/4: evaluation on the test split"
    python3 -m monai.bundle run --config_file "['$B/configs/train.json','$B/configs/evaluate.json']" \
        --bundle_root "$B" --logging_file "$B/configs/logging.conf" --dataset_dir "$OUT/acdc" \
        --ckpt_dir "$OUT/gsmorph_models" --output_dir "$OUT/gsmorph_eval" --num_workers 0 > "$OUT/gsmorph_evaluate.log" 2>&1 \
        || { tail -40 "$OUT/gsmorph_evaluate.log"; exit 1; }
    show_tables "$OUT/gsmorph_evaluate.log"
    record "GSMorph" "ACDC-layout 2-D slices" "$OUT/gsmorph_eval/metrics_summary.csv" "GSMorph" "$START"
    echo "GSMorph per-case metrics: $OUT/gsmorph_eval/metrics_per_case.csv"
    echo "GSMorph QC figures:       $(ls "$OUT"/gsmorph_eval/pairs/*/qc.png | head -4 | tr '\n' ' ')"
    echo
fi

if [[ " $BUNDLES " == *" gradicon "* ]]; then
    # GradICON is dimension-agnostic (the paper also trains on 2-D data); the demo runs the bundle in 2-D on
    # neurite-OASIS-layout coronal slices so that it learns within CPU minutes. The paper's 3-D protocol
    # (175^3, lr 5e-5, 2 x 50,000 iterations) is the bundle's default.
    B=bundles/gradicon_brain
    GRADICON_ITERATIONS=${DEMO_GRADICON_ITERATIONS:-60}
    COMMON=(--bundle_root "$B" --logging_file "$B/configs/logging.conf" --dataset_name oasis --dataset_dir "$OUT/oasis2d"
            --ckpt_dir "$OUT/gradicon_models" --num_workers 0 --spatial_dims 2 --image_size "[80,80]"
            --batch_size 8 --learning_rate 5e-4)
    echo "== GradICON 1/4: synthetic neurite-OASIS (distributed layout, 2-D slices) -> $OUT/raw_neurite"
    python3 -m data_prep synthetic neurite_oasis "$OUT/raw_neurite" --num_subjects 14 --size 64,72,80
    python3 -m data_prep oasis --root "$OUT/raw_neurite" --out "$OUT/oasis2d" --variant seg24 --num_val 4
    START=$SECONDS
    echo "== GradICON 2/4: Stage1 in 2-D at 80x80, $GRADICON_ITERATIONS iterations of batch 8 at lr 5e-4"
    echo "   (10 x the paper's 5e-5, so that a CPU run learns; the paper: 50,000 iterations at 175^3)"
    python3 -m monai.bundle run --config_file "$B/configs/train.json" "${COMMON[@]}" --output_dir "$OUT/gradicon_stage1" \
        --num_epochs 1 --iterations_per_epoch "$GRADICON_ITERATIONS" --val_interval 1
    echo "== GradICON 3/4: Stage2 initialised from Stage1, $((GRADICON_ITERATIONS / 3)) iterations"
    python3 -m monai.bundle run --config_file "['$B/configs/train.json','$B/configs/stage2.json']" "${COMMON[@]}" \
        --output_dir "$OUT/gradicon_stage2" --num_epochs 1 --iterations_per_epoch $((GRADICON_ITERATIONS / 3)) \
        --val_interval 1
    echo "== GradICON 4/4: evaluation without and with instance optimisation with gradient projection"
    echo "   (IO-GP, 10 steps at the paper's lr 2e-5; the papers: 50)"
    python3 -m monai.bundle run --config_file "['$B/configs/train.json','$B/configs/evaluate.json']" "${COMMON[@]}" \
        --output_dir "$OUT/gradicon_eval" --io_steps 10 --io_mode projected > "$OUT/gradicon_evaluate.log" 2>&1 \
        || { tail -40 "$OUT/gradicon_evaluate.log"; exit 1; }
    show_tables "$OUT/gradicon_evaluate.log"
    record "GradICON" "neurite-OASIS-layout 2-D slices" "$OUT/gradicon_eval/direct/metrics_summary.csv" "GradICON" "$START"
    record "GradICON + IO-GP (10 steps)" "neurite-OASIS-layout 2-D slices" \
        "$OUT/gradicon_eval/instance_optimization/metrics_summary.csv" "GradICON + IO-GP (10 steps)" "$START"
    echo "GradICON metrics: $OUT/gradicon_eval/{direct,instance_optimization}/metrics_per_case.csv"
    echo "GradICON QC figures: $(ls "$OUT"/gradicon_eval/direct/pairs/*/qc.png | head -2 | tr '\n' ' ')"
fi

if [[ " $BUNDLES " == *" dio "* ]]; then
    B=bundles/dio_brain
    NET=(--feature_network unet --unet_channels "[8,8,16,16]" --feature_channels 8)
    COMMON=(--bundle_root "$B" --logging_file "$B/configs/logging.conf" --dataset_dir "$OUT/oasis"
            --ckpt_dir "$OUT/dio_models" --num_workers 0 "${NET[@]}")
    echo "== DIO 1/5: synthetic Learn2Reg OASIS (distributed layout) -> $OUT/raw_oasis"
    python3 -m data_prep synthetic oasis "$OUT/raw_oasis" --num_subjects 8 --num_val 3 --size 40,48,40
    python3 -m data_prep oasis --root "$OUT/raw_oasis" --out "$OUT/oasis"
    START=$SECONDS
    ITERATIONS=${DEMO_DIO_ITERATIONS:-80}
    echo "== DIO 2/5: training, $ITERATIONS iterations, solver 30/20/10 iterations (the paper: LKU, 200/100/50, full OASIS)."
    echo "   The solver in the loop is the inference default, Adam on the diffeomorphic model: the paper trains with SGD"
    echo "   free-form and switches at test time (Table 2); with a CPU run this short, features trained through the solver"
    echo "   they are then used with are the better ones (validation Dice 74.9 against 67.6 % in one measurement)."
    python3 -m monai.bundle run --config_file "$B/configs/train.json" "${COMMON[@]}" --output_dir "$OUT/dio_train" \
        --iterations "[30,20,10]" --optimizer adam --transform diffeomorphic \
        --num_epochs 4 --iterations_per_epoch $((ITERATIONS / 4)) --val_interval 1
    echo "== DIO 3/5: evaluation: the training solver, and SGD on the same model switched at test time (no retraining);"
    echo "   then intensities alone (no training) with the same solver, the baseline the learned features must beat"
    python3 -m monai.bundle run --config_file "['$B/configs/train.json','$B/configs/evaluate.json']" "${COMMON[@]}" \
        --output_dir "$OUT/dio_eval" --iterations "[60,40,20]" --optimizer adam --transform diffeomorphic \
        --eval_iterations "[60,40,20]" --eval_optimizer sgd --eval_transform diffeomorphic \
        > "$OUT/dio_evaluate.log" 2>&1 || { tail -40 "$OUT/dio_evaluate.log"; exit 1; }
    sed -n '/Trained model: training solver/,/^$/p' "$OUT/dio_evaluate.log" | grep -v "^[0-9]\{4\}-"
    record "DIO (trained features, Adam diffeomorphic)" "OASIS-layout 3-D" \
        "$OUT/dio_eval/trained_solver/metrics_summary.csv" "Adam (diffeomorphic)" "$START"
    record "DIO (trained features, switched to SGD diffeomorphic)" "OASIS-layout 3-D" \
        "$OUT/dio_eval/switched_solver/metrics_summary.csv" "SGD (diffeomorphic)" "$START"
    python3 -m monai.bundle run --config_file "$B/configs/inference.json" "${COMMON[@]}" --feature_network intensity \
        --output_dir "$OUT/dio_eval_intensity" --iterations "[60,40,20]" > "$OUT/dio_eval_intensity.log" 2>&1 \
        || { tail -40 "$OUT/dio_eval_intensity.log"; exit 1; }
    record "DIO (intensity features, Adam diffeomorphic)" "OASIS-layout 3-D" \
        "$OUT/dio_eval_intensity/metrics_summary.csv" "DIO Adam (diffeomorphic)" "$START"
    echo "== DIO 4/5: a moving image at 1.2 x 1.2 x 2 mm (another array size), registered on its own grid"
    python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
import nibabel as nib, numpy as np, torch
from monai.data import MetaTensor
from monai.transforms import Spacing
out = Path(sys.argv[1])
pair = json.load(open(out / "oasis" / "datalist.json"))["validation"][0]
for key, mode, dtype in (("moving_image", "bilinear", np.float32), ("moving_label", "nearest", np.uint8)):
    image = nib.load(out / "oasis" / pair[key])
    data = MetaTensor(torch.as_tensor(np.asarray(image.dataobj), dtype=torch.float32)[None], affine=torch.as_tensor(image.affine))
    resampled = Spacing(pixdim=(1.2, 1.2, 2.0), mode=mode)(data)
    nib.save(nib.Nifti1Image(resampled[0].numpy().astype(dtype), resampled.affine.numpy()), out / f"anisotropic_{key}.nii.gz")
    print(f"{key}: {image.shape} at 1 mm -> {tuple(resampled.shape[1:])} at 1.2 x 1.2 x 2 mm")
for key in ("fixed_image", "fixed_label"):
    print(f"--{key.replace('_image', '')}", (out / "oasis" / pair[key]).resolve(), file=open(out / "dio_pair_args.txt", "a"))
PY
    echo "== DIO 5/5: inference on that pair (the inference defaults: Adam, diffeomorphic, the moving image's features"
    echo "   computed at the fixed voxel size): trained features, then intensities alone"
    for FEATURES in unet intensity; do
        python3 -m monai.bundle run --config_file "$B/configs/inference.json" "${COMMON[@]}" --feature_network "$FEATURES" \
            --output_dir "$OUT/dio_inference_$FEATURES" --ckpt_path "$OUT/dio_models/model.pt" \
            $(tr '\n' ' ' < "$OUT/dio_pair_args.txt") \
            --moving "$OUT/anisotropic_moving_image.nii.gz" --moving_label "$OUT/anisotropic_moving_label.nii.gz" \
            --iterations "[60,40,20]" > "$OUT/dio_inference_$FEATURES.log" 2>&1 \
            || { tail -40 "$OUT/dio_inference_$FEATURES.log"; exit 1; }
        echo "-- features: $FEATURES"
        show_tables "$OUT/dio_inference_$FEATURES.log"
        record "DIO ($FEATURES features), moving at 1.2 x 1.2 x 2 mm" "OASIS-layout 3-D" \
            "$OUT/dio_inference_$FEATURES/metrics_summary.csv" "DIO Adam (diffeomorphic)" "$START"
    done
    echo "DIO metrics: $OUT/dio_eval/comparison.csv, $OUT/dio_inference_{unet,intensity}/metrics_per_case.csv"
    echo "DIO QC figures: $(ls "$OUT"/dio_eval/*/pairs/*/qc.png "$OUT"/dio_inference_unet/*/qc.png 2>/dev/null | head -3 | tr '\n' ' ')"
fi

if [[ -s "$RUNS" ]]; then
    echo
    echo "== Summary: every registration of this demo (seconds: wall time of the method's demo steps so far)"
    python3 scripts/demo_summary.py "$RUNS"
fi
