"""Export of trained task models to TFLite and ONNX, with verification against the Keras model."""
