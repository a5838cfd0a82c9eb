#!/usr/bin/env bash
# Make sure Fashion-MNIST's IDX files are present: Debian's dataset-fashion-mnist package when
# running as root, else a message naming the package and the --data-dir option.
set -euo pipefail
dir="${LAVA_SPIKEFORMER_DATA:-/usr/share/datasets/fashion-mnist}"
if [ -f "$dir/train-images-idx3-ubyte.gz" ] && [ -f "$dir/t10k-labels-idx1-ubyte.gz" ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian package dataset-fashion-mnist ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  exit 0
fi
echo "error: Fashion-MNIST not found in $dir. Install Debian's 'dataset-fashion-mnist' package" \
     "(sudo apt-get install dataset-fashion-mnist), or set LAVA_SPIKEFORMER_DATA / pass --data-dir" \
     "to a folder holding the four *-ubyte.gz IDX files." >&2
exit 1
