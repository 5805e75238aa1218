package org.oculardeploy.bench

import org.oculardeploy.bench.core.InferenceBackend
import org.oculardeploy.bench.core.Phase
import org.oculardeploy.bench.core.PhaseTimer
import org.oculardeploy.bench.core.PlanRun
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.TensorFlowLite
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tensorflow.lite.nnapi.NnApiDelegate
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer

/**
 * LiteRT (TFLite): CPU through XNNPACK with the plan's thread count, the GPU delegate, or NNAPI.
 * load_ns = mapping the model file; compile_ns = building the interpreter with its delegate
 * (GPU shader compilation and NNAPI partitioning happen there) and allocating tensors.
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

    /** One way to build interpreter options per compute unit (a table, not a chain of ifs). */
    private val configurers: Map<String, (Interpreter.Options) -> Unit> = mapOf(
        "cpu" to { o -> o.setNumThreads(run.threads ?: 4).setUseXNNPACK(true) },
        "gpu" to { o ->
            if (!CompatibilityList().isDelegateSupportedOnThisDevice) {
                throw UnsupportedOperationException("the LiteRT GPU delegate does not support this device")
            }
            o.addDelegate(GpuDelegate().also { delegate = it })
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
        val interp = timer.time(Phase.COMPILE) {
            val options = Interpreter.Options()
            configure(options)
            Interpreter(model, options).also { it.allocateTensors() }
        }
        interpreter = interp
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

    override fun run() {
        input.rewind()
        output.rewind()
        interpreter!!.run(input, output)
    }

    override fun output(): FloatArray {
        output.rewind()
        return FloatArray(outputCount) {
            when (outputType) {
                DataType.FLOAT32 -> output.float
                DataType.INT8 -> (output.get().toInt() - outputZeroPoint) * outputScale
                DataType.UINT8 -> ((output.get().toInt() and 0xFF) - outputZeroPoint) * outputScale
                else -> throw UnsupportedOperationException("output type $outputType")
            }
        }
    }

    override fun close() {
        interpreter?.close()
        (delegate as? AutoCloseable)?.close()
        interpreter = null
        delegate = null
    }
}
