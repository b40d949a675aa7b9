"""optimum's ONNX Runtime export and dynamic int8 of one classifier directory, timed as
bench/lighter.py times plmkit's forms; prints one JSON line per form.

Run by bench/lighter.py with the interpreter of a venv holding optimum-onnx (which needs
Transformers < 4.58): python lighter_optimum.py MODEL_DIR DEV_TSV WORK_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

LATENCY_ROWS = 200


def measure(name: str, model, tokenizer, texts: list[str], labels, size: float) -> dict:
    """A `text-classification` pipeline over `model` (a directory or a loaded model): dev
    accuracy, p50 / p95 ms of single requests, rows/s in batches of 32 (bench/lighter.py uses
    it for the plain Transformers row too)."""
    from transformers import pipeline

    clf = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu",
                   truncation=True, max_length=64)
    to_id = {label: int(i) for i, label in clf.model.config.id2label.items()}
    for text in texts[:5]:
        clf(text)
    times = []
    for text in texts[:LATENCY_ROWS]:
        start = time.perf_counter()
        clf(text)
        times.append(1000 * (time.perf_counter() - start))
    start = time.perf_counter()
    predicted = [to_id[p["label"]] for p in clf(texts, batch_size=32)]
    rate = len(texts) / (time.perf_counter() - start)
    return {"form": name, "size_mb": size,
            "value": float(np.mean(np.array(predicted) == np.asarray(labels))),
            "p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "rows_per_s": rate}


def main() -> None:
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig
    from transformers import AutoTokenizer

    model_dir, dev, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    lines = dev.read_text(encoding="utf-8").splitlines()[1:]
    texts, labels = zip(*(line.rsplit("\t", 1) for line in lines))
    texts, labels = list(texts), np.array([int(y) for y in labels])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    fp32 = ORTModelForSequenceClassification.from_pretrained(model_dir, export=True)
    fp32.save_pretrained(work / "fp32")
    print(json.dumps(measure("optimum ONNX Runtime, fp32", fp32, tokenizer, texts, labels,
                             (work / "fp32" / "model.onnx").stat().st_size / 1e6)), flush=True)
    quantizer = ORTQuantizer.from_pretrained(fp32)
    config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)
    quantizer.quantize(save_dir=work / "int8", quantization_config=config)
    int8 = ORTModelForSequenceClassification.from_pretrained(work / "int8",
                                                             file_name="model_quantized.onnx")
    print(json.dumps(measure("optimum dynamic int8 (avx512_vnni)", int8, tokenizer, texts, labels,
                             (work / "int8" / "model_quantized.onnx").stat().st_size / 1e6)),
          flush=True)


if __name__ == "__main__":
    main()
