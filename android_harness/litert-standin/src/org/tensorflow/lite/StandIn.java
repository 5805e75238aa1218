// Not part of LiteRT: the one error every stand-in body throws. Nothing here is ever dexed into the
// APK (build-apk.sh passes these classes to kotlinc and ProGuard as a library only).
package org.tensorflow.lite;

final class StandIn {
  private StandIn() {}

  static UnsupportedOperationException notLiteRt() {
    return new UnsupportedOperationException(
        "compile-only LiteRT stand-in: build the app with Gradle to get the real com.google.ai.edge.litert");
  }
}
