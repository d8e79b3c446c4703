#!/bin/sh
# make demo: train mnist-net + ArcFace on Fashion-MNIST (5 epochs), then evaluate.
# Outputs land in runs/demo/ (model, JSON-lines log, metrics).
set -e
cd "$(dirname "$0")/.."
mkdir -p runs/demo
EPOCHS=${EPOCHS:-5}
./build/simile train --data fashion-mnist --arch mnist-net --head arcface --epochs "$EPOCHS" \
    --out runs/demo/model.safetensors
./build/simile eval --model runs/demo/model.safetensors --data fashion-mnist | tee runs/demo/metrics.txt
./build/simile eval --model runs/demo/model.safetensors --data fashion-mnist --json > runs/demo/metrics.json
echo "model: runs/demo/model.safetensors   log: runs/demo/model.safetensors.log.jsonl   metrics: runs/demo/metrics.json"
