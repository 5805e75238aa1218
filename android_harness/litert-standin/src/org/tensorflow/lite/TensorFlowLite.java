// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT tflite/java/src/main/java/org/tensorflow/lite/TensorFlowLite.java
// (the runtime-selecting overloads are left out).
package org.tensorflow.lite;

public final class TensorFlowLite {
  private TensorFlowLite() {}

  public static String version() {
    throw StandIn.notLiteRt();
  }

  public static String runtimeVersion() {
    throw StandIn.notLiteRt();
  }

  public static String schemaVersion() {
    throw StandIn.notLiteRt();
  }

  public static void init() {
    throw StandIn.notLiteRt();
  }
}
