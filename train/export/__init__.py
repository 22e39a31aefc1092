"""Export: BatchNorm folding, ONNX and TFLite conversion, int8 quantisation, the gate and the bundle."""
