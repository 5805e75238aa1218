// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT tflite/java/src/main/java/org/tensorflow/lite/InterpreterApi.java
// (the signature-runner, resize, cancellation and runtime-selection members are left out).
package org.tensorflow.lite;

import java.util.Map;

public interface InterpreterApi extends AutoCloseable {
  class Options {
    public Options() {
      throw StandIn.notLiteRt();
    }

    public Options setNumThreads(int numThreads) {
      throw StandIn.notLiteRt();
    }

    public Options setUseNNAPI(boolean useNNAPI) {
      throw StandIn.notLiteRt();
    }

    public Options addDelegate(Delegate delegate) {
      throw StandIn.notLiteRt();
    }

    public Options setUseXNNPACK(boolean useXNNPACK) {
      throw StandIn.notLiteRt();
    }
  }

  void run(Object input, Object output);

  void runForMultipleInputsOutputs(Object[] inputs, Map<Integer, Object> outputs);

  void allocateTensors();

  int getInputTensorCount();

  int getInputIndex(String opName);

  Tensor getInputTensor(int inputIndex);

  int getOutputTensorCount();

  int getOutputIndex(String opName);

  Tensor getOutputTensor(int outputIndex);

  Long getLastNativeInferenceDurationNanoseconds();

  @Override
  void close();
}
