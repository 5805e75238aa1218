// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT tflite/java/src/main/java/org/tensorflow/lite/DataType.java.
package org.tensorflow.lite;

public enum DataType {
  FLOAT32(1),
  INT32(2),
  UINT8(3),
  INT64(4),
  STRING(5),
  BOOL(6),
  INT16(7),
  INT8(9);

  DataType(int value) {}

  public int byteSize() {
    throw StandIn.notLiteRt();
  }
}
