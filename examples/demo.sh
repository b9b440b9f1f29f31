#!/bin/sh
# demo.sh: the main job on the bundled example (run by `make demo` after the
# build): build a Core ML package with the C API and print it back.
set -e
B=${MILK_BUILD:-build}
mkdir -p "$B/demo"
echo "== building BigVGAN's ConvTranspose1d(768->384, k=7, s=3, p=2) in 2-D form"
"$B/examples/convt1d_2d" "$B/demo/convt1d_2d.mlpackage"
echo "== milk dump $B/demo/convt1d_2d.mlpackage"
"$B/milk" dump "$B/demo/convt1d_2d.mlpackage"
