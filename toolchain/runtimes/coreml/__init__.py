"""Core ML runtimes: the numpy executor (any OS) and Apple's runtime (macOS).

Apple's runtime only predicts on macOS. The numpy executor runs the *saved* artifact instead:
NeuralNetwork specs (spec 3..5, ``.mlmodel``: :mod:`.neuralnetwork`) layer by layer, and ML Programs
(``.mlpackage``, loaded back from their MIL protobuf and weight file: :mod:`.loader`, :mod:`.mlprogram`) op by
op, including fp16 programs and compressed weights, on shared float32 kernels (:mod:`.kernels`). Every layer and
op that the model cards produce is there; anything else raises ``UnknownOpError`` naming it, which parity
records as *skipped* for that runtime; an artifact no runtime can check is *unverified* (never passed).
:mod:`.reference` is that executor as a runtime, :mod:`.apple` Apple's.
"""
