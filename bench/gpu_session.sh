#!/usr/bin/env bash
# Issue 6's GPU measurements in one device command. A session is lent 15 minutes of device
# time, the machine's start included, and one command runs at most 10: so everything is here,
# in priority order, each part bounded by what is left of BUDGET_S, every result written to
# $OUT as soon as it exists (the device tool brings $OUT back even after a timeout).
#
# Here, before the call (the data does not travel otherwise; .cache/ is git-ignored):
#   mkdir -p .cache/sst2 && cp ../shared/data/enwiki-extract/enwiki_part1.txt.xz .cache/ &&
#   cp ../shared/data/sst2/{train,dev}.tsv .cache/sst2/
# The call:  run(command="bash bench/gpu_session.sh", carry=[".cache"], timeout_s=600)
# On CPU, as a smoke test of this script:  DEVICE=cpu PYTHON=.venv/bin/python bash bench/gpu_session.sh
#
# PARTS (default "checks throughput": the throughput table needs most of one command, and the
# time-to-quality run the whole of another session, as PARTS="checks ttq"):
#   checks      bench/compile_check.py: the compiled unpadded encoder keeps one graph across
#               batch lengths, and its loss equals eager's (if it fails, ttq pretrains eagerly;
#               keep it in PARTS whenever ttq is)
#   throughput  bench/throughput.py: BERT-base 256×128 and GPT-2 32×1024 eager and compiled,
#               BERT-base 64×512 eager, each technique off in turn; the unpadded bf16 path
#               against the padded one and fp32
#   ttq         bench/time_to_quality.py: enwiki → tokenizer → shards (on the CPU, started at
#               once, beside the GPU parts) → BERT pretrained for the time left → SST-2 dev.
#               PARTS="checks ttq" gives pretraining about 5 minutes (compilation
#               included); after the throughput part too, it would get too little and is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu-session}
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-570}       # the command's own limit is 600 s: keep a margin for the copy back
PARTS=" ${PARTS:-checks throughput} "
WORK=${WORK:-/tmp/plmkit-ttq}
TTQ_RESERVE_S=${TTQ_RESERVE_S:-200}  # after pretraining: final eval and save, SST-2 fine-tuning
mkdir -p "$OUT"
left() { echo $((BUDGET_S - SECONDS)); }
part() { echo; echo "== $1 (t=${SECONDS}s, $(left)s left)"; }
quiet() { grep --line-buffered -v -e '^W[0-9]' -e 'UserWarning' -e 'Consider using tensor.detach'; }

if [[ $DEVICE == cpu ]]; then  # smoke sizes
  THROUGHPUT=(--threads 1) TTQ=(--smoke)
else
  THROUGHPUT=(--workloads bert128,gpt,bert512 --compile-workloads bert128,gpt --peak-tflops 989)
  TTQ=(--recipe recipes/wiki-gpu.yaml --enwiki .cache/enwiki_part1.txt.xz --sst2 .cache/sst2)
  for f in .cache/enwiki_part1.txt.xz .cache/sst2/train.tsv .cache/sst2/dev.tsv; do
    [[ $PARTS != *" ttq "* || -f $f ]] || { echo "missing $f: see the top of $0"; exit 2; }
  done
fi

{
  part env
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  $PY -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
  git log -1 --format='plmkit %h %<(60,trunc)%s' 2>/dev/null || true
  if [[ $DEVICE == cuda ]]; then  # the ceiling MFU is read against: a large bf16 matmul here
    $PY - <<'PY'
import torch
a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
for _ in range(3):
    a @ b
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
for _ in range(20):
    a @ b
end.record()
torch.cuda.synchronize()
print(f"bf16 8192³ matmul: {20 * 2 * 8192**3 / (start.elapsed_time(end) / 1e3) / 1e12:.0f} TFLOP/s")
PY
  fi
} 2>&1 | tee "$OUT/env.txt"

if [[ $PARTS == *" ttq "* ]]; then  # CPU work: runs while the GPU parts below are timed
  $PY bench/time_to_quality.py "${TTQ[@]}" --work "$WORK" --data-only >"$WORK.data.log" 2>&1 &
  DATA_PID=$!
fi

if [[ $PARTS == *" checks "* ]]; then
  part "compile check"
  timeout $(($(left) - 60)) $PY bench/compile_check.py --device "$DEVICE" --dynamic 2>&1 | quiet |
    tee "$OUT/compile_check.md"
  if ((PIPESTATUS[0] != 0)); then  # keep the session's other parts alive: pretrain eagerly
    echo "compile check failed: time to quality pretrains without torch.compile"
    TTQ+=(--no-compile)
  fi
fi

if [[ $PARTS == *" throughput "* ]]; then
  part throughput
  reserve=$([[ $PARTS == *" ttq "* ]] && echo $((TTQ_RESERVE_S + 60)) || echo 20)
  timeout $(($(left) - reserve)) $PY bench/throughput.py --device "$DEVICE" --compile --ablate \
    --steps 20 "${THROUGHPUT[@]}" --json "$OUT/throughput.jsonl" 2>&1 | quiet |
    tee "$OUT/throughput.md"
fi

if [[ $PARTS == *" ttq "* ]]; then
  part "time to quality"
  wait "$DATA_PID" || { echo "tokenizer/shards failed:"; tail -5 "$WORK.data.log"; exit 1; }
  seconds=$(($(left) - TTQ_RESERVE_S))
  [[ $DEVICE == cpu ]] && seconds=60  # the smoke run's own budget
  if ((seconds < 60)); then
    echo "skipped: ${seconds}s would be left for pretraining (run PARTS=ttq on its own)"
  else
    echo "pretraining for ${seconds}s of training time"
    timeout $(($(left) - 5)) $PY bench/time_to_quality.py "${TTQ[@]}" --work "$WORK" \
      --pretrain-seconds "$seconds" 2>&1 | quiet | tr '\r' '\n' | grep -v -e '^train: ' -e '^$' |
      tee "$OUT/ttq.log"
    cp "$WORK/report.md" "$OUT/ttq.md" 2>/dev/null
    cp "$WORK/pretrain/metrics.jsonl" "$OUT/ttq-pretrain-metrics.jsonl" 2>/dev/null
    cp "$WORK/pretrain/curves.png" "$OUT/ttq-curves.png" 2>/dev/null
  fi
fi
part done
