#!/bin/sh
# install-deps.sh: install the Debian 12 packages milk needs to build and
# test, skipping those already present. Runs apt-get only when something is
# missing (as root, or through sudo when available).
set -e
PKGS="build-essential pkg-config clang libclang-rt-14-dev libprotobuf-c-dev protobuf-c-compiler
protobuf-compiler libopenblas-dev libcjson-dev libzip-dev zlib1g-dev
python3-numpy python3-pytest python3-protobuf python3-torch python3-onnx
python3-torchvision libonnx-testdata"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
