#!/usr/bin/env bash
# Train the emoji prior (CPU run's config) on a CUDA GPU for ~8 min. Needs data/cache/emoji_32.npz and,
# if click/tqdm/platformdirs are missing, their wheels in .whl/ (pure python: imported from the zip).
# OUT=/dir bash scripts/train_gpu.sh [MINUTES]; DEVICE=cpu to smoke-test; RESUME_FROM=ckpt.pt to continue.
# $OUT/emoji32_gpu: prior.safetensors, log.jsonl, config.json, latest.png, ckpt.pt.part-* (cat to rejoin).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the output folder}"
MINUTES="${1:-8}"
DEVICE="${DEVICE:-cuda}"
RUN="$(mktemp -d)/emoji32_gpu"
mkdir -p "$RUN" "$OUT/emoji32_gpu"
[ -z "${RESUME_FROM:-}" ] || cp "$RESUME_FROM" "$RUN/ckpt.pt"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
for mod in click tqdm platformdirs; do  # pure-python wheels import straight from the .whl (zip) file
  python3 -c "import $mod" 2>/dev/null || PYTHONPATH="$PYTHONPATH:$(ls "$PWD"/.whl/"$mod"-*.whl | head -n 1)"
done
[ "$DEVICE" = cpu ] || nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m ganprior.cli.main train --data data/cache/emoji_32.npz --out "$RUN" --resume --device "$DEVICE" \
  --max-minutes "$MINUTES" --ckpt-minutes 1 --sample-every 1000 --snapshot-every 0 --threads 4 2>&1 |
  tr '\r' '\n' | grep -v '^ *$' | tail -n 4
cp "$RUN"/{prior.safetensors,log.jsonl,config.json} "$RUN/samples/latest.png" "$OUT/emoji32_gpu/" 2>/dev/null || true
split -b 15M "$RUN/ckpt.pt" "$OUT/emoji32_gpu/ckpt.pt.part-"
tail -n 1 "$OUT/emoji32_gpu/log.jsonl"
ls -l "$OUT/emoji32_gpu"
