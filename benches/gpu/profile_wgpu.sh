#!/usr/bin/env bash
# Device-machine check (issue 13 item 2): `coinfer profile --backend wgpu` of both zoo
# backbones on the H200, plus one tiny `coinfer search --backend wgpu` to show the whole
# pipeline runs there. One call; everything lands in $OUT/gpu.tar.gz and on stdout.
set -u
t0=$(date +%s)
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f $icd ] && export VK_DRIVER_FILES=$icd
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f $egl ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
W=/tmp/gpu; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee $W/nvidia-smi.csv
gunzip -c .devbin/coinfer.gz > /tmp/coinfer && chmod +x /tmp/coinfer
lscpu | grep -E "Model name|^CPU\(s\)" | tee $W/cpu.txt
# GPU load and memory every 0.5 s: shows the work really ran on the H200.
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 500 > $W/smi.csv 2>&1 &
for m in resnet-mini resnet18-cifar; do
  echo "== profile $m ($(( $(date +%s) - t0 )) s)"
  timeout 110 /tmp/coinfer profile --backend wgpu --model $m --batch-sizes 16 \
    --warmup 30 --repeats 200 --out $W/wgpu-$m.json > $W/wgpu-$m.jsonl 2> $W/wgpu-$m.err
  echo "rc $?"; cat $W/wgpu-$m.jsonl; tail -5 $W/wgpu-$m.err
done
echo "== tiny search on wgpu ($(( $(date +%s) - t0 )) s)"
( time timeout 150 /tmp/coinfer search --backend wgpu --results $W/results --run gpu \
    --backbone-epochs 1 --validation-images 200 --ae-ratios --spatial-ratios \
    --refine-evaluations 10 --exhaustive-levels 0 --episodes 10 --warmup 5 \
    --finetune-epochs 0 --no-baselines ) > $W/search.out 2> $W/search.err
echo "rc $?"; tail -c 1500 $W/search.out; grep -v "^\s*$" $W/search.err | tail -8
kill %1 2>/dev/null; sort -t, -k3 -n $W/smi.csv | tail -2
tar czf $OUT/gpu.tar.gz -C $W .
echo "== done ($(( $(date +%s) - t0 )) s)"
