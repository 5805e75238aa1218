// Compile-only stand-in for LiteRT 1.0.1 (com.google.ai.edge.litert:litert, as pinned in
// android_harness/gradle/libs.versions.toml): see android_harness/litert-standin/README.md.
// Signatures as in google-ai-edge/LiteRT tflite/java/src/main/java/org/tensorflow/lite/Interpreter.java.
package org.tensorflow.lite;

import java.io.File;
import java.nio.ByteBuffer;

public final class Interpreter extends InterpreterImpl implements InterpreterApi {
  public static class Options extends InterpreterImpl.Options {
    public Options() {}

    @Override
    public Options setUseXNNPACK(boolean useXNNPACK) {
      throw StandIn.notLiteRt();
    }

    @Override
    public Options setNumThreads(int numThreads) {
      throw StandIn.notLiteRt();
    }

    @Override
    public Options setUseNNAPI(boolean useNNAPI) {
      throw StandIn.notLiteRt();
    }

    public Options setAllowFp16PrecisionForFp32(boolean allow) {
      throw StandIn.notLiteRt();
    }

    @Override
    public Options addDelegate(Delegate delegate) {
      throw StandIn.notLiteRt();
    }
  }

  public Interpreter(File modelFile) {
    throw StandIn.notLiteRt();
  }

  public Interpreter(File modelFile, Options options) {
    throw StandIn.notLiteRt();
  }

  public Interpreter(ByteBuffer byteBuffer) {
    throw StandIn.notLiteRt();
  }

  public Interpreter(ByteBuffer byteBuffer, Options options) {
    throw StandIn.notLiteRt();
  }
}
