package org.oculardeploy.bench.core

import org.json.JSONArray
import org.json.JSONObject
import java.text.SimpleDateFormat
import java.util.Date
import java.util.Locale
import java.util.TimeZone

/** results v1 `device` (toolchain/bench/schema.py is the source of the field names). */
data class DeviceInfo(
    val platform: String,
    val identifier: String,
    val marketingName: String?,
    val osVersion: String,
    val lowPowerMode: Boolean?,
    val batteryState: String?,
    val cpu: String?,
    val cores: Int?,
)

data class AppInfo(val name: String, val version: String, val build: String)

/** results v1 `runtime`; [options] are settings the app set explicitly (the GPU delegate's), written only when set. */
data class RuntimeInfo(
    val name: String,
    val version: String,
    val computeUnits: String?,
    val delegate: String?,
    val threads: Int?,
    val options: Map<String, Any>? = null,
)

/**
 * results v2's additions (toolchain/bench/measures.py), JSON-ready: `memory`, `placement` and `device_state`
 * as built by [MemoryResult], [Placement] and [StateRecorder] (or read back from a file as they were).
 */
data class V2Fields(
    val coldLoadNs: Long?,
    val warmLoadNs: List<Long>,
    val nativeLatencyNs: List<Long>?,
    val memory: JSONObject?,
    val placement: JSONObject,
    val deviceState: JSONObject,
)

/** One run: raw integer nanoseconds, never statistics (those are computed in Python). */
data class BenchResult(
    val runId: String,
    val status: String,
    val error: String?,
    val createdAt: String,
    val planId: String?,
    val artifact: ArtifactRef,
    val device: DeviceInfo,
    val thermalStateStart: String,
    val thermalStateEnd: String,
    val app: AppInfo,
    val runtime: RuntimeInfo,
    val protocol: Protocol,
    val loadNs: Long?,
    val compileNs: Long?,
    val firstInferenceNs: Long?,
    val latencyNs: List<Long>,
    val featureDim: Int?,
    val featureSample: List<Double>?,
    val notes: String? = null,
    /** The launch this run belongs to (`--es launch_id`), so a collector counts only this launch's files. */
    val launchId: String? = null,
    /** The plan run key (`runs[].key`). */
    val runKey: String? = null,
    /** What one latency sample contains; null only when read from a file that did not say. */
    val timedRegion: String? = TIMED_REGION,
    /** results v2 fields; null: a v1 result (read from an older file), written back as v1. */
    val v2: V2Fields? = null,
) {
    /** The results v1 JSON object; nulls are written as JSON null (org.json drops a key put with Kotlin null). */
    fun toJson(): JSONObject {
        fun n(v: Any?): Any = v ?: JSONObject.NULL
        return JSONObject()
            .put("schema_version", if (v2 == null) 1 else SCHEMA_VERSION)
            .put("run_id", runId)
            .put("status", status)
            .put("error", n(error))
            .put("created_at", createdAt)
            .put("plan_id", n(planId))
            .put("launch_id", n(launchId))
            .put("run_key", n(runKey))
            .apply { timedRegion?.let { put("timed_region", it) } }
            .put("artifact", JSONObject()
                .put("name", artifact.name).put("format", artifact.format).put("sha256", artifact.sha256)
                .put("precision", n(artifact.precision))
                .apply { artifact.sizeBytes?.let { put("size_bytes", it) } }) // optional in v1
            .put("device", JSONObject()
                .put("platform", device.platform).put("identifier", device.identifier)
                .put("marketing_name", n(device.marketingName)).put("os_version", device.osVersion)
                .put("thermal_state_start", thermalStateStart).put("thermal_state_end", thermalStateEnd)
                .put("low_power_mode", n(device.lowPowerMode)).put("battery_state", n(device.batteryState))
                .put("cpu", n(device.cpu)).put("cores", n(device.cores)))
            .put("app", JSONObject().put("name", app.name).put("version", app.version).put("build", app.build))
            .put("runtime", JSONObject()
                .put("name", runtime.name).put("version", runtime.version)
                .put("compute_units", n(runtime.computeUnits)).put("delegate", n(runtime.delegate))
                .put("threads", n(runtime.threads))
                .apply { runtime.options?.let { o -> put("options", JSONObject().also { j -> o.forEach { (k, v) -> j.put(k, v) } }) } })
            .put("protocol", JSONObject()
                .put("warmup", protocol.warmup).put("iterations", protocol.iterations)
                .put("input_source", protocol.inputSource).put("input_seed", n(protocol.inputSeed))
                .put("cooldown_ms", protocol.cooldownMs))
            .put("load_ns", n(loadNs))
            .put("compile_ns", n(compileNs))
            .put("first_inference_ns", n(firstInferenceNs))
            .put("latency_ns", JSONArray().also { a -> latencyNs.forEach { a.put(it) } })
            .put("feature_dim", n(featureDim))
            .put("feature_sample", featureSample?.let { s -> JSONArray().also { a -> s.forEach { a.put(it) } } } ?: JSONObject.NULL)
            .apply { notes?.let { put("notes", it) } }
            .apply {
                v2?.let { m ->
                    put("cold_load_ns", n(m.coldLoadNs))
                    put("warm_load_ns", JSONArray().also { a -> m.warmLoadNs.forEach { a.put(it) } })
                    put("native_latency_ns", m.nativeLatencyNs?.let { l -> JSONArray().also { a -> l.forEach { a.put(it) } } } ?: JSONObject.NULL)
                    put("memory", n(m.memory))
                    put("placement", m.placement)
                    put("device_state", m.deviceState)
                }
            }
    }

    companion object {
        /** What this writer writes; version 1 files still read (and write back as 1). */
        const val SCHEMA_VERSION = 2
        const val FEATURE_SAMPLE_LEN = 16

        /** One inference on an input set before the loop, plus reading every feature back as float32 (iOS times the same). */
        const val TIMED_REGION = "inference+read_features"
        private val RUN_ID = Regex("^[A-Za-z0-9._-]{1,128}$")

        /** ISO 8601 UTC with milliseconds; SimpleDateFormat because java.time needs API 26 (minSdk is 21). */
        fun utcNow(nowMs: Long = System.currentTimeMillis()): String =
            SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'", Locale.US)
                .apply { timeZone = TimeZone.getTimeZone("UTC") }.format(Date(nowMs))

        /** A run id unique per run: plan id, run key and a random suffix (the store de-duplicates on it). */
        fun newRunId(planId: String?, key: String, suffix: String = java.util.UUID.randomUUID().toString().take(8)): String {
            val id = listOfNotNull(planId, key, suffix).joinToString(".").replace(Regex("[^A-Za-z0-9._-]"), "_")
            return id.take(128).also { check(RUN_ID.matches(it)) }
        }

        /** Read a results v1 or v2 file (the shared fixtures); a wrong field is a [PlanException] naming it. */
        fun fromJson(text: String): BenchResult {
            val o = JSONObject(text)
            val r = Reader(o, "result")
            val version = r.int("schema_version")
            if (version != 1 && version != SCHEMA_VERSION) throw PlanException("result.schema_version $version is not 1 or $SCHEMA_VERSION")
            val a = r.obj("artifact")
            val d = r.obj("device")
            val app = r.obj("app")
            val rt = r.obj("runtime")
            val p = r.obj("protocol")
            return BenchResult(
                runId = r.string("run_id"), status = r.string("status"), error = r.stringOrNull("error"),
                createdAt = r.string("created_at"), planId = r.stringOrNull("plan_id"),
                artifact = ArtifactRef(a.string("name"), a.string("format"), "", a.string("sha256"),
                    a.stringOrNull("precision"), a.longOrNull("size_bytes")),
                device = DeviceInfo(d.string("platform"), d.string("identifier"), d.stringOrNull("marketing_name"),
                    d.string("os_version"), d.booleanOrNull("low_power_mode"), d.stringOrNull("battery_state"),
                    d.stringOrNull("cpu"), d.longOrNull("cores")?.toInt()),
                thermalStateStart = d.string("thermal_state_start"), thermalStateEnd = d.string("thermal_state_end"),
                app = AppInfo(app.string("name"), app.string("version"), app.string("build")),
                runtime = RuntimeInfo(rt.string("name"), rt.string("version"), rt.stringOrNull("compute_units"),
                    rt.stringOrNull("delegate"), rt.longOrNull("threads")?.toInt(), rt.scalarsOrNull("options")),
                protocol = Protocol(p.int("warmup"), p.int("iterations"), p.string("input_source"),
                    p.longOrNull("input_seed"), p.long("cooldown_ms")),
                loadNs = r.longOrNull("load_ns"), compileNs = r.longOrNull("compile_ns"),
                firstInferenceNs = r.longOrNull("first_inference_ns"),
                latencyNs = r.array("latency_ns").mapIndexed { i, v ->
                    if (v !is Int && v !is Long) throw PlanException("result.latency_ns[$i] must be an integer")
                    (v as Number).toLong()
                },
                featureDim = r.longOrNull("feature_dim")?.toInt(),
                featureSample = r.arrayOrNull("feature_sample")?.map { (it as Number).toDouble() },
                notes = r.stringOrNull("notes"),
                launchId = r.stringOrNull("launch_id"),
                runKey = r.stringOrNull("run_key"),
                timedRegion = r.stringOrNull("timed_region"),
                v2 = if (version == 1) null else V2Fields(
                    coldLoadNs = r.longOrNull("cold_load_ns"),
                    warmLoadNs = r.array("warm_load_ns").map { (it as Number).toLong() },
                    nativeLatencyNs = r.arrayOrNull("native_latency_ns")?.map { (it as Number).toLong() },
                    memory = if (o.isNull("memory")) null else o.getJSONObject("memory"),
                    placement = o.getJSONObject("placement"),
                    deviceState = o.getJSONObject("device_state"),
                ),
            )
        }
    }
}
