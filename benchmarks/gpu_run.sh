#!/usr/bin/env bash
# The one script the GPU check runs on a machine with an NVIDIA GPU (issue: "The GPU path, run
# for real"). It needs torch with CUDA, typer, rich and pyyaml there; cnncost comes from this
# tree (PYTHONPATH). Every result is written under $OUT (default: ./gpu-out) as JSON, so
# docs/gpu.md can be written from the files, never from memory. Budget: well under 10 minutes.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
run() {  # run NAME CMD...: time-boxed, output and exit code kept, never stops the script
  local name=$1; shift
  echo "== $name: $*" | tee -a "$OUT/log.txt"
  timeout 240 "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
  echo "rc=$?" | tee -a "$OUT/log.txt"
}
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv \
  >"$OUT/nvidia-smi.csv" 2>&1
python -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" \
  >"$OUT/versions.txt" 2>&1
# The CUDA tests that skip on CPU.
run gpu-tests python -m pytest -q -m gpu tests
# Roofline: what cnncost measures, next to a plain large matmul and copy.
python - >"$OUT/plain-roofline.json" 2>"$OUT/plain-roofline.err" <<'PY'
import json, torch
res = {}
for name, dt in [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)]:
    a = torch.randn(8192, 8192, device="cuda", dtype=dt); b = torch.randn_like(a)
    for _ in range(3): a @ b
    torch.cuda.synchronize(); s, e = torch.cuda.Event(True), torch.cuda.Event(True)
    s.record(); [a @ b for _ in range(20)]; e.record(); torch.cuda.synchronize()
    res[name] = {"matmul_tflops": 20 * 2 * 8192**3 / (s.elapsed_time(e) / 1e3) / 1e12}
x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
torch.cuda.synchronize(); s, e = torch.cuda.Event(True), torch.cuda.Event(True)
s.record(); [y.copy_(x) for _ in range(20)]; e.record(); torch.cuda.synchronize()
res["copy_gb_s"] = 20 * 2 * (1 << 30) / (s.elapsed_time(e) / 1e3) / 1e9
print(json.dumps(res, indent=1))
PY
for m in resnet50 mobilenetv2; do
  for dt in float32 bfloat16 float16; do
    run "$m-$dt" python -m cnncost bench "$m" --device cuda -b 1,64,256 --dtype "$dt" \
      --max-time 4 -f json
    run "$m-$dt-cl" python -m cnncost bench "$m" --device cuda -b 1,64,256 --dtype "$dt" \
      --channels-last --max-time 4 -f json
  done
  run "$m-compile" python -m cnncost bench "$m" --device cuda -b 64 --compile --max-time 4 -f json
  run "$m-per-layer" python -m cnncost bench "$m" --device cuda -b 64 --per-layer --max-time 4 \
    -f json
  if python -m cnncost bench --help | grep -q -- "--train"; then
    run "$m-train" python -m cnncost bench "$m" --device cuda -b 64 --train --max-time 4 -f json
  fi
  # Estimated peak (analyze) vs torch.cuda.max_memory_allocated (bench records it).
  run "$m-analyze-b64" python -m cnncost analyze "$m" --batch 64 -f json
done
# Latency prediction on the GPU: calibrate (CUDA events, the bench's timing method), then each
# model predicted without running it, and predicted beside measured (bench --predict).
run calibrate python -m cnncost calibrate --device cuda --max-time 150
for m in resnet50 mobilenetv2; do
  run "$m-predict" python -m cnncost predict "$m" --device cuda -b 64 -f json
  run "$m-bench-predict" python -m cnncost bench "$m" --device cuda -b 1,64 --predict \
    --max-time 4 -f json
done
echo "done; results in $OUT" | tee -a "$OUT/log.txt"
