// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT tflite/java/src/main/java/org/tensorflow/lite/InterpreterImpl.java
// (package-private there too: Interpreter's public methods come from here).
package org.tensorflow.lite;

import java.util.Map;

class InterpreterImpl implements InterpreterApi {
  static class Options extends InterpreterApi.Options {
    public Options() {}
  }

  @Override
  public void run(Object input, Object output) {
    throw StandIn.notLiteRt();
  }

  @Override
  public void runForMultipleInputsOutputs(Object[] inputs, Map<Integer, Object> outputs) {
    throw StandIn.notLiteRt();
  }

  @Override
  public void allocateTensors() {
    throw StandIn.notLiteRt();
  }

  @Override
  public int getInputTensorCount() {
    throw StandIn.notLiteRt();
  }

  @Override
  public int getInputIndex(String opName) {
    throw StandIn.notLiteRt();
  }

  @Override
  public Tensor getInputTensor(int inputIndex) {
    throw StandIn.notLiteRt();
  }

  @Override
  public int getOutputTensorCount() {
    throw StandIn.notLiteRt();
  }

  @Override
  public int getOutputIndex(String opName) {
    throw StandIn.notLiteRt();
  }

  @Override
  public Tensor getOutputTensor(int outputIndex) {
    throw StandIn.notLiteRt();
  }

  @Override
  public Long getLastNativeInferenceDurationNanoseconds() {
    throw StandIn.notLiteRt();
  }

  @Override
  public void close() {
    throw StandIn.notLiteRt();
  }
}
