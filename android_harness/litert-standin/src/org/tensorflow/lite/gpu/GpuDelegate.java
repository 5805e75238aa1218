// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT tflite/delegates/gpu/java/src/main/java/org/tensorflow/lite/gpu/GpuDelegate.java
// (litert-gpu).
package org.tensorflow.lite.gpu;

import org.tensorflow.lite.Delegate;

public class GpuDelegate implements Delegate {
  public GpuDelegate(GpuDelegateFactory.Options options) {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }

  public GpuDelegate() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }

  public static class Options extends GpuDelegateFactory.Options {}

  @Override
  public long getNativeHandle() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }

  @Override
  public void close() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }
}
