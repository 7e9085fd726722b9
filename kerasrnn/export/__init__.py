"""Export: the Keras model -> mask-free inference graph, TFLite and ONNX conversion, verification, report.

`kerasrnn.export.export_model(model, export_dir, calibration, ...)` exports any supported Keras model (a notebook
model); `kerasrnn.export.export_run(run_dir)` exports a training run. Both are imported on first use: the
converter's child process imports this package and needs neither.
"""

_PUBLIC = ("ExportSettings", "export_model", "export_run")


def __getattr__(name):
    if name in _PUBLIC:
        from kerasrnn.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'kerasrnn.export' has no attribute {name!r}")


__all__ = list(_PUBLIC)
