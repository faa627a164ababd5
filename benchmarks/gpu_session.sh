#!/usr/bin/env bash
# The GPU checklist, for a machine with a GPU: CUDA tests, the demo on CUDA, the
# trainer, selection cost and one full training; figures go to benchmarks/RESULTS.md.
#
# The GPU machine has python3 with torch, torchvision, pytest, pandas, matplotlib and seaborn,
# but no internet and none of torch-pruning, fvcore and their small pure-Python
# dependencies. Build those wheels first on a machine that reaches PyPI; the repository is
# used in place (PYTHONPATH), not installed.
#
#   bash benchmarks/gpu_session.sh wheels   # here: .whl/ (~0.2 MB) and .fmnist/ (~30 MB)
#
# Then run each step on the GPU machine, carrying .whl and .fmnist. Each step fits in 10 min
# and writes its log to $OUT (or ./gpu-out):
#
#   bash benchmarks/gpu_session.sh tests    # the test suite on the GPU machine (CUDA-only
#                                           # tests included), then the demo on CUDA
#   bash benchmarks/gpu_session.sh bench    # trainer ratio; selection cost at 50k/10k
#   bash benchmarks/gpu_session.sh dense    # one 181-epoch training of resnet56 on 25,000 images
#   bash benchmarks/gpu_session.sh pruned   # the same for its p=0.5 prune, then with compile
#
# DEVICE=cpu runs the same commands on the CPU (to try the script itself, at tiny sizes
# only: the bench step's sizes take hours there).
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:-}
out=${OUT:-gpu-out}
py=${PYTHON:-python3}
dev=${DEVICE:-cuda}

case "$step" in
wheels)
    # Pure-Python wheels of the versions the CPU environment runs (fvcore and iopath ship
    # sdists only, so they are built here). No dependencies: the GPU image has the rest.
    pip=${PIP:-"$py -m pip"}
    rm -rf .whl && mkdir -p .whl
    $pip wheel --no-deps -q -w .whl torch-pruning==1.6.1 fvcore==0.1.5.post20221221 \
        iopath==0.1.10 yacs==0.1.8 termcolor==3.3.0
    mkdir -p .fmnist
    cp /usr/share/datasets/fashion-mnist/*.gz .fmnist/
    for d in /.whl/ /.fmnist/ /gpu-out/; do
        grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >>.git/info/exclude
    done
    ls -l .whl .fmnist
    exit 0 ;;
tests | bench | dense | pruned) ;;
*)
    echo "usage: $0 wheels|tests|bench|dense|pruned  (got step='$step')" >&2
    exit 2 ;;
esac

[ -d .whl ] || { echo "no .whl/: run '$0 wheels' first and carry .whl" >&2; exit 2; }
$py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
if [ -d .fmnist ]; then  # the embedded default dataset, where the library looks for it
    mkdir -p /usr/share/datasets/fashion-mnist
    cp .fmnist/*.gz /usr/share/datasets/fashion-mnist/
fi
mkdir -p "$out"
log="$out/$step.log"
run() { echo "\$ $*" | tee -a "$log"; "$@" 2>&1 | tee -a "$log"; }
: >"$log"
if [ "$dev" = cuda ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$log"
fi
run $py -c "import torch; print('torch', torch.__version__, 'CUDA', torch.cuda.is_available())"

case "$step" in
tests)
    # Every test that does not need papermill or Ray; the CUDA-only ones run here, and tests
    # that leave the device unset train on CUDA.
    run $py -m pytest -q -rs -p no:cacheprovider --timeout=900 tests/test_data.py \
        tests/test_train_distill.py tests/test_select.py tests/test_prune_fuse.py \
        tests/test_models_flops.py tests/test_experiment.py tests/test_benchmarks.py || true
    run $py -m prunefuse.cli demo --out /tmp/demo-$dev --no-progress device=$dev || true
    cp /tmp/demo-$dev/summary.md "$out/demo-$dev-summary.md" 2>/dev/null || true ;;
bench)
    run $py benchmarks/trainer_throughput.py --device $dev --images 25000 --workers 8 || true
    run $py benchmarks/trainer_throughput.py --device $dev --images 25000 --workers 8 \
        --arch resnet56 --prune 0.5 || true
    run $py benchmarks/selection_cost.py --device $dev --pool 50000 --train 10000 || true ;;
dense)
    run $py benchmarks/full_training.py --device $dev --ratios ;;
pruned)
    run $py benchmarks/full_training.py --device $dev --no-dense --ratios 0.5
    run $py benchmarks/full_training.py --device $dev --no-dense --ratios 0.5 --compile ;;
esac
