package org.oculardeploy.bench.core

import org.json.JSONArray
import org.json.JSONObject

/** One device-state sample (results v2 `device_state.samples`); null where the app cannot tell. */
data class StateSample(
    val tMs: Long,
    val batteryLevel: Double?,
    val charging: Boolean?,
    val lowPowerMode: Boolean?,
    val thermalState: String,
    val foreground: Boolean?,
    val screenOn: Boolean?,
) {
    fun toJson(): JSONObject = JSONObject().put("t_ms", tMs).put("battery_level", batteryLevel ?: JSONObject.NULL)
        .put("charging", charging ?: JSONObject.NULL).put("low_power_mode", lowPowerMode ?: JSONObject.NULL)
        .put("thermal_state", thermalState).put("foreground", foreground ?: JSONObject.NULL)
        .put("screen_on", screenOn ?: JSONObject.NULL)
}

/** What [Environment.readState] returns: a sample without its time (the runner stamps it). */
data class DeviceState(
    val batteryLevel: Double?,
    val charging: Boolean?,
    val lowPowerMode: Boolean?,
    val thermalState: String,
    val foreground: Boolean?,
    val screenOn: Boolean?,
)

/** One memory reading: [kind] `pss` (Android, Debug.getPss) or `phys_footprint` (iOS). */
data class MemoryReading(val kind: String, val bytes: Long, val nativeHeapBytes: Long? = null)

/** results v2 `memory`: before the load, after the timed loop, the largest read. */
data class MemoryResult(
    val kind: String,
    val beforeBytes: Long?,
    val afterBytes: Long?,
    val peakBytes: Long?,
    val nativeHeapBeforeBytes: Long?,
    val nativeHeapAfterBytes: Long?,
) {
    fun toJson(): JSONObject = JSONObject().put("kind", kind).put("before_bytes", beforeBytes ?: JSONObject.NULL)
        .put("after_bytes", afterBytes ?: JSONObject.NULL).put("peak_bytes", peakBytes ?: JSONObject.NULL)
        .apply {
            if (kind == "pss") {
                put("native_heap_before_bytes", nativeHeapBeforeBytes ?: JSONObject.NULL)
                put("native_heap_after_bytes", nativeHeapAfterBytes ?: JSONObject.NULL)
            }
        }

    companion object {
        /** Before, the readings on the way, after: null when nothing could be read. */
        fun of(before: MemoryReading?, during: List<MemoryReading>, after: MemoryReading?): MemoryResult? {
            val all = listOfNotNull(before) + during + listOfNotNull(after)
            if (all.isEmpty()) return null
            return MemoryResult(all[0].kind, before?.bytes, after?.bytes, all.maxOf { it.bytes },
                before?.nativeHeapBytes, after?.nativeHeapBytes)
        }
    }
}

/** results v2 `placement`: where the graph ran. */
data class Placement(
    val source: String,
    val totalNodes: Int? = null,
    val delegatedNodes: Int? = null,
    val note: String? = null,
) {
    fun toJson(): JSONObject = JSONObject().put("source", source).put("total_nodes", totalNodes ?: JSONObject.NULL)
        .put("delegated_nodes", delegatedNodes ?: JSONObject.NULL).put("ops_by_device", JSONObject.NULL)
        .put("note", note ?: JSONObject.NULL)

    companion object {
        fun unknown(why: String) = Placement("unknown", note = why)

        private val REPLACING = Regex("""Replacing (\d+) out of (\d+) node\(s\) with delegate""")

        /**
         * LiteRT's delegate log line — "Replacing 42 out of 45 node(s) with delegate (TfLiteGpuDelegateV2) node,
         * yielding 2 partitions" (tensorflow/lite/core/subgraph.cc, ReplaceNodeSubsetsWithDelegateKernels) —
         * to delegated/total nodes; the last such line in [log] counts (one per delegate applied).
         */
        fun fromDelegateLog(log: String): Placement? {
            val m = REPLACING.findAll(log).lastOrNull() ?: return null
            val line = log.substring(m.range.first).lineSequence().first().trim()
            return Placement("litert_log", m.groupValues[2].toInt(), m.groupValues[1].toInt(), line)
        }
    }
}

/** results v2 `device_state`: samples at most [MAX_SAMPLES], and whether every one said foreground / screen on. */
class StateRecorder(private val clock: NanoClock, private val read: () -> DeviceState?) {
    private val t0 = clock.nanoTime()
    val samples = ArrayList<StateSample>()

    /** Reads the state now (between timed iterations only); past the cap, only the last sample is replaced. */
    fun sample() {
        val s = try {
            read()
        } catch (e: Exception) {
            null
        } ?: return
        val tMs = (clock.nanoTime() - t0) / 1_000_000
        val stamped = StateSample(tMs, s.batteryLevel, s.charging, s.lowPowerMode, s.thermalState, s.foreground, s.screenOn)
        if (samples.size >= MAX_SAMPLES) samples[samples.size - 1] = stamped else samples.add(stamped)
    }

    private fun all(f: (StateSample) -> Boolean?): Boolean? {
        val values = samples.map(f)
        return if (values.isEmpty() || values.any { it == null }) null else values.all { it == true }
    }

    fun toJson(): JSONObject = JSONObject()
        .put("samples", JSONArray().also { a -> samples.forEach { a.put(it.toJson()) } })
        .put("stayed_foreground", all { it.foreground } ?: JSONObject.NULL)
        .put("screen_stayed_on", all { it.screenOn } ?: JSONObject.NULL)

    companion object {
        const val MAX_SAMPLES = 256
    }
}
