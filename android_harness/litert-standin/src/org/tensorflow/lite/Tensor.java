// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT tflite/java/src/main/java/org/tensorflow/lite/Tensor.java.
package org.tensorflow.lite;

public interface Tensor {
  class QuantizationParams {
    public QuantizationParams(final float scale, final int zeroPoint) {
      throw StandIn.notLiteRt();
    }

    public float getScale() {
      throw StandIn.notLiteRt();
    }

    public int getZeroPoint() {
      throw StandIn.notLiteRt();
    }
  }

  DataType dataType();

  int numDimensions();

  int numBytes();

  int numElements();

  int[] shape();

  int[] shapeSignature();

  int index();

  String name();

  QuantizationParams quantizationParams();
}
