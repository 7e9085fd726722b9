"""Export: the Keras model -> mask-free inference graph, TFLite and ONNX conversion, verification, report."""
