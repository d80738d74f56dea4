"""Reduced-precision artifacts: NNCF INT8, FP16 and TensorRT engines. Installed as ``edgedepth_quantize``."""
