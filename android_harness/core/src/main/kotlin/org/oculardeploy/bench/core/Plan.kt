package org.oculardeploy.bench.core

import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject

/** A plan file that cannot be used; the message names the field and says what to do. */
class PlanException(message: String) : Exception(message)

/** How every run of a plan is timed (results v1 `protocol`). Times in ms, counts in iterations. */
data class Protocol(
    val warmup: Int,
    val iterations: Int,
    val inputSource: String,
    val inputSeed: Long?,
    val cooldownMs: Long,
)

data class Quantization(val scale: Double, val zeroPoint: Int)

/**
 * The model input: raw pixels 0..255 in [layout], quantized with [quantization] for full-int8 models; [color]
 * "rgb" | "bgr" | "gray" (null in older plans: gray for 1 channel, rgb for 3; see [PixelGeometry]).
 */
data class TensorSpec(
    val name: String,
    val shape: List<Int>,
    val layout: String,
    val dtype: String,
    val quantization: Quantization?,
    val color: String? = null,
) {
    val elementCount: Int get() = shape.fold(1) { a, b -> a * b }
}

data class ArtifactRef(
    val name: String,
    val format: String,
    val path: String,
    val sha256: String,
    val precision: String?,
    val sizeBytes: Long?,
)

/**
 * LiteRT GPU delegate settings (GpuDelegateFactory.Options), set explicitly so they are never silent defaults
 * (the delegate's own: precision loss allowed, FAST_SINGLE_ANSWER) and recorded in the result's runtime.options.
 */
data class GpuOptions(val precisionLossAllowed: Boolean, val inferencePreference: String) {
    fun toMap(): Map<String, Any> =
        mapOf("precision_loss_allowed" to precisionLossAllowed, "inference_preference" to inferencePreference)

    companion object {
        val PREFERENCES = listOf("fast_single_answer", "sustained_speed")

        /**
         * What a plan without gpu_options gets: fp16 arithmetic only where the artifact is not fp32 (an fp32
         * artifact timed in fp16 would be another model), and sustained speed: one delegate serves every timed run.
         */
        fun defaultFor(precision: String?) = GpuOptions(precision != null && precision != "fp32", "sustained_speed")
    }
}

/** One artifact with one compute unit: one results file. */
data class PlanRun(
    val key: String,
    val artifact: ArtifactRef,
    val computeUnits: String,
    val delegate: String?,
    val threads: Int?,
    val input: TensorSpec,
    val outputName: String,
    val outputDim: Int,
    val fixedInput: String?,
    val referenceSample: List<Double>?,
    val gpuOptions: GpuOptions? = null,
) {
    /** The GPU settings this run uses: the plan's, or [GpuOptions.defaultFor] the artifact; null off the GPU. */
    val effectiveGpuOptions: GpuOptions?
        get() = if (computeUnits == "gpu") gpuOptions ?: GpuOptions.defaultFor(artifact.precision) else null
}

/** `plan.json` as written by `deploy bench plan` (PLAN_SCHEMA in toolchain/bench/schema.py). */
data class Plan(
    val planId: String,
    val createdAt: String,
    val device: String,
    val platform: String,
    val protocol: Protocol,
    val inputs: List<String>,
    val runs: List<PlanRun>,
) {
    companion object {
        const val VERSION = 1
        private val KEY = Regex("^[A-Za-z0-9._-]{1,48}$")
        private val PLAN_ID = Regex("^[A-Za-z0-9._-]{1,64}$")

        /** Parse and check a plan; every problem is a [PlanException] naming the field. */
        fun parse(text: String): Plan {
            val o = try {
                JSONObject(text)
            } catch (e: JSONException) {
                throw PlanException("plan.json is not a JSON object: ${e.message}")
            }
            val r = Reader(o, "plan")
            val version = r.int("plan_version")
            if (version != VERSION) {
                throw PlanException("plan_version $version is not supported (this app reads $VERSION); rebuild the app")
            }
            val planId = r.string("plan_id")
            if (!PLAN_ID.matches(planId)) throw PlanException("plan.plan_id '$planId' must match ${PLAN_ID.pattern}")
            val p = r.obj("protocol")
            val protocol = Protocol(
                warmup = p.int("warmup").also { if (it < 0) throw PlanException("protocol.warmup must be >= 0") },
                iterations = p.int("iterations").also { if (it < 1) throw PlanException("protocol.iterations must be >= 1") },
                inputSource = p.string("input_source").also {
                    if (it != "image" && it != "random") throw PlanException("protocol.input_source must be image or random")
                },
                inputSeed = p.longOrNull("input_seed"),
                cooldownMs = p.long("cooldown_ms").also { if (it < 0) throw PlanException("protocol.cooldown_ms must be >= 0") },
            )
            val runs = r.array("runs").mapIndexed { i, any ->
                val run = Reader(any as? JSONObject ?: throw PlanException("plan.runs[$i] is not an object"), "runs[$i]")
                val a = run.obj("artifact")
                val path = a.string("path")
                if (path.startsWith("/") || path.split("/").contains("..")) {
                    throw PlanException("runs[$i].artifact.path '$path' must be relative to the plan folder")
                }
                val inp = run.obj("input")
                inp.stringOrNull("color")?.let {
                    if (it !in PixelGeometry.COLORS) throw PlanException("runs[$i].input.color '$it' must be one of ${PixelGeometry.COLORS}")
                }
                val q = inp.objOrNull("quantization")
                val key = run.string("key")
                if (!KEY.matches(key)) throw PlanException("runs[$i].key '$key' must match ${KEY.pattern}")
                val out = run.obj("output")
                PlanRun(
                    key = key,
                    artifact = ArtifactRef(a.string("name"), a.string("format"), path, a.string("sha256"),
                        a.stringOrNull("precision"), a.longOrNull("size_bytes")),
                    computeUnits = run.string("compute_units"),
                    delegate = run.stringOrNull("delegate"),
                    threads = run.longOrNull("threads")?.toInt(),
                    input = TensorSpec(
                        name = inp.string("name"),
                        shape = inp.array("shape").map { (it as? Number)?.toInt() ?: throw PlanException("runs[$i].input.shape holds a non-number") },
                        layout = inp.stringOrNull("layout") ?: "nchw",
                        dtype = inp.stringOrNull("dtype") ?: "float32",
                        quantization = q?.let { Quantization(it.double("scale"), it.int("zero_point")) },
                        color = inp.stringOrNull("color"),
                    ),
                    outputName = out.string("name"),
                    outputDim = out.int("dim"),
                    fixedInput = run.stringOrNull("fixed_input"),
                    referenceSample = run.arrayOrNull("reference_sample")?.map { (it as Number).toDouble() },
                    gpuOptions = run.objOrNull("gpu_options")?.let { g ->
                        val pref = g.string("inference_preference")
                        if (pref !in GpuOptions.PREFERENCES) {
                            throw PlanException("runs[$i].gpu_options.inference_preference must be one of ${GpuOptions.PREFERENCES}")
                        }
                        GpuOptions(g.boolean("precision_loss_allowed"), pref)
                    },
                )
            }
            if (runs.isEmpty()) throw PlanException("plan.runs is empty: nothing to run")
            val dupes = runs.groupBy { it.key }.filter { it.value.size > 1 }.keys
            if (dupes.isNotEmpty()) throw PlanException("plan.runs has duplicate keys: ${dupes.joinToString()}")
            return Plan(planId, r.string("created_at"), r.string("device"), r.string("platform"), protocol,
                r.array("inputs").map { it.toString() }, runs)
        }
    }
}

/** Typed access to a JSONObject with errors that name the field (org.json's say "JSONObject[...]"). */
internal class Reader(private val o: JSONObject, private val where: String) {
    private fun missing(k: String): Nothing = throw PlanException("$where.$k is missing")
    private fun wrong(k: String, what: String): Nothing = throw PlanException("$where.$k must be $what")
    private fun raw(k: String): Any? = if (!o.has(k)) missing(k) else o.get(k).takeUnless { it == JSONObject.NULL }

    fun string(k: String): String = (raw(k) ?: wrong(k, "a string, not null")) as? String ?: wrong(k, "a string")
    fun stringOrNull(k: String): String? = if (!o.has(k)) null else raw(k)?.let { it as? String ?: wrong(k, "a string or null") }
    private fun integral(k: String, v: Any): Long {
        val n = v as? Number ?: wrong(k, "an integer")
        if (n is Double || n is Float) {
            if (n.toDouble() != Math.floor(n.toDouble())) wrong(k, "an integer")
        }
        return n.toLong()
    }
    fun long(k: String): Long = integral(k, raw(k) ?: wrong(k, "an integer, not null"))
    fun int(k: String): Int = long(k).toInt()
    fun longOrNull(k: String): Long? = if (!o.has(k)) null else raw(k)?.let { integral(k, it) }
    fun booleanOrNull(k: String): Boolean? = if (!o.has(k)) null else raw(k)?.let { it as? Boolean ?: wrong(k, "true, false or null") }
    fun boolean(k: String): Boolean = booleanOrNull(k) ?: wrong(k, "true or false")

    /** An object of scalars (string, boolean, number) or null, e.g. runtime.options. */
    fun scalarsOrNull(k: String): Map<String, Any>? = if (!o.has(k)) null else raw(k)?.let { v ->
        val obj = v as? JSONObject ?: wrong(k, "an object or null")
        obj.keys().asSequence().sorted().associateWith { key ->
            obj.get(key).also { if (it !is String && it !is Boolean && it !is Number) wrong("$k.$key", "a string, boolean or number") }
        }
    }
    fun double(k: String): Double = (raw(k) as? Number ?: wrong(k, "a number")).toDouble()
    fun obj(k: String): Reader = Reader(raw(k) as? JSONObject ?: wrong(k, "an object"), "$where.$k")
    fun objOrNull(k: String): Reader? = if (!o.has(k)) null else raw(k)?.let { Reader(it as? JSONObject ?: wrong(k, "an object"), "$where.$k") }
    fun array(k: String): List<Any> = (raw(k) as? JSONArray ?: wrong(k, "an array")).let { a -> List(a.length()) { a.get(it) } }
    fun arrayOrNull(k: String): List<Any>? = if (!o.has(k)) null else raw(k)?.let { v ->
        (v as? JSONArray ?: wrong(k, "an array or null")).let { a -> List(a.length()) { a.get(it) } }
    }
}
