// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT tflite/delegates/nnapi/java/src/main/java/org/tensorflow/lite/nnapi/NnApiDelegate.java
// (part of litert; its Options class is left out).
package org.tensorflow.lite.nnapi;

import org.tensorflow.lite.Delegate;

public class NnApiDelegate implements Delegate, AutoCloseable {
  public NnApiDelegate() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }

  @Override
  public long getNativeHandle() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }

  @Override
  public void close() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }

  public int getNnapiErrno() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }

  public boolean hasErrors() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }
}
