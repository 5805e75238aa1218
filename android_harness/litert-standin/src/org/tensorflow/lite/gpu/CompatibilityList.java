// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT tflite/delegates/gpu/java/src/main/java/org/tensorflow/lite/gpu/CompatibilityList.java
// (litert-gpu; getBestOptionsForThisDevice is left out).
package org.tensorflow.lite.gpu;

import java.io.Closeable;

public class CompatibilityList implements Closeable {
  public CompatibilityList() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }

  public boolean isDelegateSupportedOnThisDevice() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }

  @Override
  public void close() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }
}
