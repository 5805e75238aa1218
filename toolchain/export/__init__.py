"""The exporters, on top of the artifact contract and the runtimes: one plugin per format (``onnx.py``,
``tflite.py``, ``coreml/``), the driver (:mod:`.base`) and settling parity over every runtime (:mod:`.parity`)."""
