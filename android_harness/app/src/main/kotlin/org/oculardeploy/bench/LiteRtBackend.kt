package org.oculardeploy.bench

import org.oculardeploy.bench.core.InferenceBackend
import org.oculardeploy.bench.core.Phase
import org.oculardeploy.bench.core.Placement
import org.oculardeploy.bench.core.PhaseTimer
import org.oculardeploy.bench.core.PlanRun
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.TensorFlowLite
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.gpu.GpuDelegateFactory
import org.tensorflow.lite.nnapi.NnApiDelegate
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer

/**
 * LiteRT (TFLite): CPU through XNNPACK with the plan's thread count, the GPU delegate, or NNAPI.
 * load_ns = mapping the model file; compile_ns = building the interpreter with its delegate
 * (GPU shader compilation and NNAPI partitioning happen there) and allocating tensors.
 *
 * The GPU delegate's settings are set explicitly from the plan ([PlanRun.effectiveGpuOptions], recorded in
 * the result's runtime.options): its defaults (precision loss allowed, FAST_SINGLE_ANSWER; GpuDelegateFactory.Options)
 * would otherwise decide silently whether an fp32 model runs in fp16.
 */
class LiteRtBackend(private val run: PlanRun, private val mapModel: () -> MappedByteBuffer) : InferenceBackend {
    override val runtimeName = "litert"
    override val runtimeVersion: String = TensorFlowLite.runtimeVersion()

    private var interpreter: Interpreter? = null
    private var delegate: Delegate? = null
    private lateinit var input: ByteBuffer
    private lateinit var output: ByteBuffer
    private var outputType = DataType.FLOAT32
    private var outputScale = 1f
    private var outputZeroPoint = 0
    private var outputCount = 0
    private var features = FloatArray(0) // reused: output() runs inside every timed sample

    /** One way to build interpreter options per compute unit (a table, not a chain of ifs). */
    private val configurers: Map<String, (Interpreter.Options) -> Unit> = mapOf(
        "cpu" to { o -> o.setNumThreads(run.threads ?: 4).setUseXNNPACK(true) },
        "gpu" to { o ->
            // CompatibilityList holds a native handle (it is Closeable): close it whatever it answers.
            val supported = CompatibilityList().use { it.isDelegateSupportedOnThisDevice }
            if (!supported) {
                throw UnsupportedOperationException("the LiteRT GPU delegate does not support this device")
            }
            val g = run.effectiveGpuOptions ?: throw IllegalStateException("run ${run.key} is not a GPU run")
            val options = GpuDelegate.Options().apply {
                setPrecisionLossAllowed(g.precisionLossAllowed)
                setInferencePreference(GPU_PREFERENCES.getValue(g.inferencePreference))
            }
            o.addDelegate(GpuDelegate(options).also { delegate = it })
        },
        "nnapi" to { o ->
            if (android.os.Build.VERSION.SDK_INT < 27) {
                throw UnsupportedOperationException("NNAPI needs Android 8.1 (API 27); this is API ${android.os.Build.VERSION.SDK_INT}")
            }
            o.addDelegate(NnApiDelegate().also { delegate = it })
        },
    )

    override fun prepare(timer: PhaseTimer) {
        val model = timer.time(Phase.LOAD) { mapModel() }
        val configure = configurers[run.computeUnits]
            ?: throw IllegalArgumentException("unknown compute units ${run.computeUnits}; use cpu, gpu or nnapi")
        val logBefore = delegateLog() // outside the timed phases: reading logcat takes milliseconds
        val interp = timer.time(Phase.COMPILE) {
            val options = Interpreter.Options()
            configure(options)
            Interpreter(model, options).also { it.allocateTensors() }
        }
        interpreter = interp
        val logAfter = delegateLog()
        val fresh = if (logAfter.startsWith(logBefore)) logAfter.substring(logBefore.length) else logAfter
        placement = Placement.fromDelegateLog(fresh) ?: Placement.unknown(
            "no \"Replacing N out of M node(s) with delegate\" line in this app's tflite log (no delegate applied, " +
                "or logcat unreadable)")
        val inTensor = interp.getInputTensor(0)
        input = ByteBuffer.allocateDirect(inTensor.numBytes()).order(ByteOrder.nativeOrder())
        val outIndex = try {
            interp.getOutputIndex(run.outputName)
        } catch (e: IllegalArgumentException) {
            0 // converters may rename the output; the artifact has exactly one
        }
        val outTensor = interp.getOutputTensor(outIndex)
        outputType = outTensor.dataType()
        outputScale = outTensor.quantizationParams().scale
        outputZeroPoint = outTensor.quantizationParams().zeroPoint
        outputCount = outTensor.numElements()
        output = ByteBuffer.allocateDirect(outTensor.numBytes()).order(ByteOrder.nativeOrder())
        features = FloatArray(outputCount)
    }

    override fun setInput(pixels: FloatArray) {
        input.rewind()
        val q = run.input.quantization
        when (interpreter!!.getInputTensor(0).dataType()) {
            DataType.FLOAT32 -> pixels.forEach { input.putFloat(it) }
            DataType.INT8 -> pixels.forEach { input.put(quantize(it, q!!.scale, q.zeroPoint, -128, 127).toByte()) }
            DataType.UINT8 -> pixels.forEach { input.put(quantize(it, q!!.scale, q.zeroPoint, 0, 255).toByte()) }
            else -> throw UnsupportedOperationException("input type ${interpreter!!.getInputTensor(0).dataType()}")
        }
        input.rewind()
    }

    private fun quantize(x: Float, scale: Double, zeroPoint: Int, lo: Int, hi: Int): Int =
        (Math.round(x / scale).toInt() + zeroPoint).coerceIn(lo, hi)

    private var placement = Placement.unknown("not prepared")

    override fun placement(): Placement = placement

    /** LiteRT's own invoke time of the last run (no Java buffer copies): what `benchmark_model` reports. */
    override fun lastNativeInferenceNs(): Long? = interpreter?.lastNativeInferenceDurationNanoseconds

    /**
     * This app's own `tflite` log lines (an app may read its own log since Android 4.1, no permission):
     * the delegate logs "Replacing N out of M node(s) with delegate" when it is applied
     * (tensorflow/lite/core/subgraph.cc), the node count the Java API does not expose.
     */
    private fun delegateLog(): String = try {
        val p = ProcessBuilder("logcat", "-d", "-v", "raw", "-s", "tflite:I").redirectErrorStream(true).start()
        p.inputStream.bufferedReader().use { it.readText() }.also { p.waitFor() }
    } catch (e: Exception) {
        ""
    }

    override fun run() {
        input.rewind()
        output.rewind()
        interpreter!!.run(input, output)
    }

    /** Every feature of the last run as float32, into one reused array (valid until the next run). */
    override fun output(): FloatArray {
        output.rewind()
        when (outputType) {
            DataType.FLOAT32 -> output.asFloatBuffer().get(features)
            DataType.INT8 -> for (i in 0 until outputCount) features[i] = (output.get().toInt() - outputZeroPoint) * outputScale
            DataType.UINT8 -> for (i in 0 until outputCount) {
                features[i] = ((output.get().toInt() and 0xFF) - outputZeroPoint) * outputScale
            }
            else -> throw UnsupportedOperationException("output type $outputType")
        }
        return features
    }

    companion object {
        /** Plan names -> GpuDelegateFactory.Options constants. */
        private val GPU_PREFERENCES = mapOf(
            "fast_single_answer" to GpuDelegateFactory.Options.INFERENCE_PREFERENCE_FAST_SINGLE_ANSWER,
            "sustained_speed" to GpuDelegateFactory.Options.INFERENCE_PREFERENCE_SUSTAINED_SPEED,
        )
    }

    override fun close() {
        interpreter?.close()
        (delegate as? AutoCloseable)?.close()
        interpreter = null
        delegate = null
    }
}
