package org.oculardeploy.bench.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** results v2 from the runner: warm loads, native time, memory, placement, device state. */
class MeasuresTest {
    private class NativeBackend(clock: FakeClock) : InferenceBackend by FakeBackend(clock) {
        var n = 0L
        override fun lastNativeInferenceNs(): Long = 900_000L + n++
        override fun placement() = Placement.fromDelegateLog(
            "INFO: Created TensorFlow Lite delegate for GPU.\n" +
                "INFO: Replacing 42 out of 45 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2 partitions for the whole graph.\n")!!
    }

    private class MeasuredEnvironment : Environment by FakeEnvironment() {
        var pss = 50_000_000L
        var foreground = true
        override fun memory(): MemoryReading = MemoryReading("pss", pss.also { pss += 1_000_000 }, 9_000_000)
        override fun readState() = DeviceState(0.8, false, false, "nominal", foreground, true)
    }

    @Test
    fun theRunnerRecordsTheV2Fields() {
        val clock = FakeClock()
        val plan = Plan.parse(PlanJson.valid(units = listOf("gpu")).toString())
        var opened = 0
        val env = MeasuredEnvironment()
        val r = BenchRunner(clock).runOne(plan, plan.runs[0], env, { opened++; NativeBackend(clock) }, { FloatArray(12) })
        val o = r.toJson()
        assertEquals(2, o.getInt("schema_version"))
        assertEquals(37_000_000L, o.getLong("cold_load_ns")) // load 7 ms + compile 30 ms
        assertEquals(listOf(37_000_000L, 37_000_000L, 37_000_000L),
            (0 until 3).map { o.getJSONArray("warm_load_ns").getLong(it) })
        assertEquals(1 + BenchRunner.WARM_LOADS, opened)
        val native = o.getJSONArray("native_latency_ns")
        assertEquals(5, native.length())
        assertEquals(900_000L, native.getLong(0)) // the first timed iteration: untimed runs are not read
        val mem = o.getJSONObject("memory")
        assertEquals("pss", mem.getString("kind"))
        assertEquals(50_000_000L, mem.getLong("before_bytes"))
        assertEquals(mem.getLong("after_bytes"), mem.getLong("peak_bytes"))
        val p = o.getJSONObject("placement")
        assertEquals(42, p.getInt("delegated_nodes"))
        assertEquals(45, p.getInt("total_nodes"))
        val ds = o.getJSONObject("device_state")
        assertTrue(ds.getJSONArray("samples").length() >= 3)
        assertTrue(ds.getBoolean("stayed_foreground"))
        assertEquals(0.8, ds.getJSONArray("samples").getJSONObject(0).getDouble("battery_level"), 0.0)
    }

    @Test
    fun aRunThatLeftTheForegroundSaysSoAndAFailedRunHasNoNativeSamples() {
        val clock = FakeClock()
        val plan = Plan.parse(PlanJson.valid().toString())
        val env = MeasuredEnvironment()
        var polls = 0
        val r = BenchRunner(clock).runOne(plan, plan.runs[0], env, { FakeBackend(clock) }, { FloatArray(12) },
            shouldStop = { if (++polls == 3) { env.foreground = false; null } else null })
        assertTrue(!r.toJson().getJSONObject("device_state").getBoolean("stayed_foreground"))
        assertTrue("FakeBackend reports no native time", r.toJson().isNull("native_latency_ns"))
        val failed = BenchRunner(clock).runOne(plan, plan.runs[0], env, { FakeBackend(clock, failOnLoad = true) }, { null })
        val f = failed.toJson()
        assertEquals("error", f.getString("status"))
        assertEquals(0, f.getJSONArray("warm_load_ns").length())
        assertEquals("unknown", f.getJSONObject("placement").getString("source"))
        assertEquals(null, Placement.fromDelegateLog("no delegate here"))
    }
}
