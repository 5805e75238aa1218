// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert-gpu-api, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT
// tflite/delegates/gpu/java/src/main/java/org/tensorflow/lite/gpu/GpuDelegateFactory.java
// (its DelegateFactory interface, create(), the backend and serialization options are left out).
package org.tensorflow.lite.gpu;

public class GpuDelegateFactory {
  public static class Options {
    public Options() {}

    public static final int INFERENCE_PREFERENCE_FAST_SINGLE_ANSWER = 0;

    public static final int INFERENCE_PREFERENCE_SUSTAINED_SPEED = 1;

    public Options setPrecisionLossAllowed(boolean precisionLossAllowed) {
      throw new UnsupportedOperationException("compile-only LiteRT stand-in");
    }

    public Options setQuantizedModelsAllowed(boolean quantizedModelsAllowed) {
      throw new UnsupportedOperationException("compile-only LiteRT stand-in");
    }

    public Options setInferencePreference(int preference) {
      throw new UnsupportedOperationException("compile-only LiteRT stand-in");
    }

    public boolean isPrecisionLossAllowed() {
      throw new UnsupportedOperationException("compile-only LiteRT stand-in");
    }

    public boolean areQuantizedModelsAllowed() {
      throw new UnsupportedOperationException("compile-only LiteRT stand-in");
    }

    public int getInferencePreference() {
      throw new UnsupportedOperationException("compile-only LiteRT stand-in");
    }
  }

  public GpuDelegateFactory() {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }

  public GpuDelegateFactory(Options options) {
    throw new UnsupportedOperationException("compile-only LiteRT stand-in");
  }
}
