"""model.onnx → an int8 model.onnx by ONNX Runtime's dynamic quantization of the weight matmuls.

Only MatMul and Gemm nodes with a constant weight are quantized (`MatMulConstBOnly`): the
embedding lookups stay fp32 (ONNX Runtime quantizes Gather too unless told not to, a known
source of the large accuracy drops users report), as do the attention products of two
activations and, by default, the task head. `quant_pre_process` (shape inference and graph
clean-up) runs first, as ONNX Runtime's documentation advises. Torch-free.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from plmkit.runtime.errors import UserError

QUANTIZED_OPS = ["MatMul", "Gemm"]


def quantize_int8(source: Path, target: Path, per_channel: bool,
                  keep_fp32: list[str] | None = None) -> list[str]:
    """Write the int8 form of `source` to `target`; returns the nodes kept in fp32 (those
    reading any initializer named in `keep_fp32`, the head's parameters)."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise UserError("export format=int8 needs onnx and onnxruntime (pip install onnx onnxruntime)") from None
    keep = set(keep_fp32 or [])
    with tempfile.TemporaryDirectory(prefix="plmkit-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        # node names change in pre-processing: find the head's nodes in the graph quantized;
        # the quantizer splits a Gemm into NAME_MatMul + NAME_Add first, so name both
        excluded = [name for node in onnx.load(str(prepared)).graph.node
                    if node.op_type in QUANTIZED_OPS and keep.intersection(node.input)
                    for name in (node.name, f"{node.name}_MatMul")]
        quantize_dynamic(str(prepared), str(target), per_channel=per_channel,
                         weight_type=QuantType.QInt8, op_types_to_quantize=QUANTIZED_OPS,
                         nodes_to_exclude=excluded, extra_options={"MatMulConstBOnly": True})
    return excluded
