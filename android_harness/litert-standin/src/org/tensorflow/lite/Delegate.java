// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT tflite/java/src/main/java/org/tensorflow/lite/Delegate.java.
package org.tensorflow.lite;

import java.io.Closeable;

public interface Delegate extends Closeable {
  long getNativeHandle();

  @Override
  default void close() {}
}
