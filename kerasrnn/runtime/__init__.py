"""Running exported models (.tflite, .onnx) and .keras task models from Python."""
