#!/bin/sh
# demo.sh: the main job on the bundled example, run by `make demo` after the
# build. A BigVGAN-style upsampler exported from PyTorch
# (examples/upsampler/, made by make_upsampler.py) is converted to a Core ML
# package, checked for Core ML's known defect patterns, run with milk's
# interpreter, and compared with PyTorch's own output.
set -e
B=${MILK_BUILD:-build}
EX=examples/upsampler
OUT=$B/demo
mkdir -p "$OUT"

echo "== milk convert $EX/model.onnx -o $OUT/upsampler.mlpackage"
"$B/milk" convert "$EX/model.onnx" -o "$OUT/upsampler.mlpackage"

echo
echo "== milk lint $OUT/upsampler.mlpackage"
"$B/milk" lint "$OUT/upsampler.mlpackage" || true

echo
echo "== milk run $OUT/upsampler.mlpackage --input x=$EX/x.npy --output $OUT/out.npz"
"$B/milk" run "$OUT/upsampler.mlpackage" --input "x=$EX/x.npy" --output "$OUT/out.npz"

echo
echo "== milk verify $OUT/upsampler.mlpackage --reference $EX/reference.npz (PyTorch's output)"
"$B/milk" verify "$OUT/upsampler.mlpackage" --reference "$EX/reference.npz" \
    --report "$OUT/report.html"
echo "report: $OUT/report.html"

echo
echo "== the C API: examples/convt1d_2d.c builds BigVGAN's ConvTranspose1d(768->384, k=7, s=3, p=2) in 2-D form"
"$B/examples/convt1d_2d" "$OUT/convt1d_2d.mlpackage"
"$B/milk" dump "$OUT/convt1d_2d.mlpackage" | grep -v " = const()"
