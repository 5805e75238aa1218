package org.oculardeploy.bench.core

import org.json.JSONArray
import org.json.JSONObject

/** A clock that only moves when the fake backend "works", so every duration is known exactly. */
class FakeClock(var now: Long = 1_000_000_000L) : NanoClock {
    override fun nanoTime(): Long = now
    fun advance(ns: Long) {
        now += ns
    }
}

/**
 * A backend with known delays: load [loadNs], compile [compileNs], and run i takes runNs(i).
 * Output: features i * 0.5 for i in 0 until dim. Fails at run number [failAtRun] when set.
 */
class FakeBackend(
    private val clock: FakeClock,
    private val loadNs: Long = 7_000_000,
    private val compileNs: Long? = 30_000_000,
    private val dim: Int = 20,
    private val failAtRun: Int? = null,
    private val failOnLoad: Boolean = false,
    private val runNs: (Int) -> Long = { 1_000_000L + it * 1_000L },
    /** Reading the features back after a run takes this long (0: free, as the older tests assume). */
    private val outputNs: Long = 0,
) : InferenceBackend {
    override val runtimeName = "litert"
    override val runtimeVersion = "fake-1.0"
    var runs = 0
    var closed = false
    var lastInput: FloatArray? = null

    override fun prepare(timer: PhaseTimer) {
        timer.time(Phase.LOAD) {
            clock.advance(loadNs)
            if (failOnLoad) throw IllegalArgumentException("model file is truncated")
        }
        compileNs?.let { ns -> timer.time(Phase.COMPILE) { clock.advance(ns) } }
    }

    override fun setInput(pixels: FloatArray) {
        lastInput = pixels
    }

    override fun run() {
        if (failAtRun == runs) throw IllegalStateException("delegate lost")
        clock.advance(runNs(runs))
        runs++
    }

    var outputs = 0

    override fun output(): FloatArray {
        clock.advance(outputNs)
        outputs++
        return FloatArray(dim) { it * 0.5f }
    }

    override fun close() {
        closed = true
    }
}

class FakeEnvironment(private val thermal: MutableList<String> = mutableListOf("nominal", "fair")) : Environment {
    override val device = DeviceInfo("android", "Pixel 6a", "Google Pixel 6a", "14 (API 34)", false, "charging", "arm64-v8a", 8)
    override val app = AppInfo("OcularBench", "1.0", "1")
    override fun thermalState(): String = if (thermal.size > 1) thermal.removeAt(0) else thermal[0]
}

object PlanJson {
    /** A valid plan with one run per compute unit (mirrors `deploy bench plan` output). */
    fun valid(
        warmup: Int = 3,
        iterations: Int = 5,
        inputSource: String = "image",
        units: List<String> = listOf("cpu"),
        shape: List<Int> = listOf(1, 2, 2, 3),
        cooldownMs: Long = 0,
    ): JSONObject = JSONObject()
        .put("plan_version", 1).put("plan_id", "android-20250302T091500")
        .put("created_at", "2025-03-02T09:15:00Z").put("device", "android").put("platform", "android")
        .put("protocol", JSONObject().put("warmup", warmup).put("iterations", iterations)
            .put("input_source", inputSource).put("input_seed", if (inputSource == "random") 42 else JSONObject.NULL)
            .put("cooldown_ms", cooldownMs))
        .put("inputs", JSONArray().put("inputs/fixed_0a1b2c3d.png"))
        .put("runs", JSONArray().also { runs ->
            units.forEachIndexed { i, cu ->
                runs.put(JSONObject()
                    .put("key", "%02d-tiny-tflite-fp32-%s".format(i, cu))
                    .put("artifact", JSONObject().put("name", "tiny-tflite-fp32").put("format", "tflite")
                        .put("path", "artifacts/tiny-tflite-fp32/tiny-tflite-fp32.tflite")
                        .put("sha256", "ab".repeat(32)).put("precision", "fp32").put("size_bytes", 123456))
                    .put("compute_units", cu)
                    .put("delegate", mapOf("cpu" to "xnnpack", "gpu" to "gpu", "nnapi" to "nnapi")[cu])
                    .put("threads", if (cu == "cpu") 4 else JSONObject.NULL)
                    .put("input", JSONObject().put("name", "pixels").put("shape", JSONArray(shape))
                        .put("layout", "nhwc").put("dtype", "float32"))
                    .put("output", JSONObject().put("name", "features").put("dim", 20))
                    .put("fixed_input", "inputs/fixed_0a1b2c3d.png")
                    .put("reference_sample", JSONArray().put(0.0).put(0.5)))
            }
        })
}
