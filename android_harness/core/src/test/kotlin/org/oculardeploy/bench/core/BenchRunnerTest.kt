package org.oculardeploy.bench.core

import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder

class BenchRunnerTest {
    @get:Rule
    val tmp = TemporaryFolder()

    private val fixed = FloatArray(12) { (it * 20).toFloat() }

    private fun runWith(backend: FakeBackend, clock: FakeClock, plan: Plan = Plan.parse(PlanJson.valid().toString()),
                        pixels: FloatArray? = fixed, stop: () -> String? = { null }): BenchResult =
        BenchRunner(clock).runOne(plan, plan.runs[0], FakeEnvironment(), { backend }, { pixels }, shouldStop = stop)

    @Test
    fun timesEveryPhaseExactly() {
        val clock = FakeClock()
        val backend = FakeBackend(clock)
        val r = runWith(backend, clock)
        assertEquals("ok", r.status)
        assertNull(r.error)
        assertEquals(7_000_000L, r.loadNs)
        assertEquals(30_000_000L, r.compileNs)
        assertEquals(1_000_000L, r.firstInferenceNs) // run 0
        // runs 1..3 are warm-up; timed runs are 4..8, each 1 ms + i us
        assertEquals((4..8).map { 1_000_000L + it * 1_000L }, r.latencyNs)
        assertEquals(1 + 3 + 5, backend.runs)
        assertTrue(backend.closed)
        assertEquals(20, r.featureDim)
        assertEquals(16, r.featureSample!!.size)
        assertEquals(7.5, r.featureSample!![15], 0.0)
        assertEquals("nominal", r.thermalStateStart)
        assertEquals("fair", r.thermalStateEnd)
        assertEquals(RuntimeInfo("litert", "fake-1.0", "cpu", "xnnpack", 4), r.runtime)
        assertTrue(r.runId.startsWith("android-20250302T091500.00-tiny-tflite-fp32-cpu."))
    }

    @Test
    fun randomInputIsSeededAndFeatureSampleStillUsesTheFixedInput() {
        val clock = FakeClock()
        val backend = FakeBackend(clock, compileNs = null)
        val plan = Plan.parse(PlanJson.valid(inputSource = "random").toString())
        val r = runWith(backend, clock, plan)
        assertNull("a backend without a compile phase reports null", r.compileNs)
        assertEquals(SeededPixels.generate(12, 42).toList(), backend.lastInput!!.toList())
        assertEquals(16, r.featureSample!!.size)
        val noFixed = runWith(FakeBackend(clock), clock, plan, pixels = null)
        assertEquals("ok", noFixed.status)
        assertNull("no fixed input: nothing to compare with PyTorch", noFixed.featureSample)
    }

    @Test
    fun aFailedLoadIsAnErrorResultWithNoSamples() {
        val clock = FakeClock()
        val backend = FakeBackend(clock, failOnLoad = true)
        val r = runWith(backend, clock)
        assertEquals("error", r.status)
        assertEquals("IllegalArgumentException: model file is truncated", r.error)
        assertTrue(r.latencyNs.isEmpty())
        assertNull(r.firstInferenceNs)
        assertTrue(backend.closed)
    }

    @Test
    fun aFailureMidwayKeepsTheSamplesAsPartial() {
        val clock = FakeClock()
        val r = runWith(FakeBackend(clock, failAtRun = 1 + 3 + 2), clock)
        assertEquals("partial", r.status)
        assertEquals(2, r.latencyNs.size)
        assertTrue(r.error!!.contains("delegate lost") && r.error!!.contains("after 2 of 5"))
    }

    @Test
    fun aStopRequestEndsTheRunAsPartial() {
        val clock = FakeClock()
        var polls = 0
        val r = runWith(FakeBackend(clock), clock, stop = { if (++polls > 3) "thermal state critical" else null })
        assertEquals("partial", r.status)
        assertEquals(3, r.latencyNs.size)
        assertEquals("stopped after 3 of 5 iterations: thermal state critical", r.error)
    }

    @Test
    fun wrongInputSizeIsAnError() {
        val clock = FakeClock()
        val r = runWith(FakeBackend(clock), clock, pixels = FloatArray(5))
        assertEquals("error", r.status)
        assertTrue(r.error!!.contains("fixed input has 5 values; pixels takes 12"))
    }

    @Test
    fun theRealClockMeasuresRealSleeps() {
        val plan = Plan.parse(PlanJson.valid(warmup = 0, iterations = 3).toString())
        val sleeper = object : InferenceBackend {
            override val runtimeName = "litert"
            override val runtimeVersion = "sleep"
            override fun prepare(timer: PhaseTimer) = timer.time(Phase.LOAD) { Thread.sleep(2) }
            override fun setInput(pixels: FloatArray) {}
            override fun run() = Thread.sleep(2)
            override fun output() = FloatArray(4)
            override fun close() {}
        }
        val r = BenchRunner().runOne(plan, plan.runs[0], FakeEnvironment(), { sleeper }, { fixed })
        assertEquals(3, r.latencyNs.size)
        assertTrue("each sample >= 2 ms: ${r.latencyNs}", r.latencyNs.all { it >= 2_000_000L && it < 2_000_000_000L })
        assertTrue(r.loadNs!! >= 2_000_000L)
    }

    @Test
    fun executorWritesOneFilePerRunFailuresIncludedAndCoolsDown() {
        val clock = FakeClock()
        val plan = Plan.parse(PlanJson.valid(units = listOf("cpu", "gpu", "nnapi"), cooldownMs = 250).toString())
        val slept = mutableListOf<Long>()
        val files = PlanExecutor(BenchRunner(clock), ResultWriter(tmp.root), FakeEnvironment(), { slept.add(it) })
            .execute(plan, { run ->
                if (run.computeUnits == "nnapi") throw UnsupportedOperationException("NNAPI not available")
                FakeBackend(clock)
            }, { fixed })
        assertEquals(3, files.size)
        assertEquals(listOf(250L, 250L), slept)
        val statuses = files.map { JSONObject(it.readText()).getString("status") }
        assertEquals(listOf("ok", "ok", "error"), statuses)
        val err = JSONObject(files[2].readText())
        assertEquals("UnsupportedOperationException: NNAPI not available", err.getString("error"))
        assertEquals("nnapi", err.getJSONObject("runtime").getString("delegate"))
        assertFalse(tmp.root.list()!!.any { it.endsWith(".tmp") })
    }

    @Test
    fun aSampleIncludesReadingTheFeaturesBackAndTheResultSaysSo() {
        val clock = FakeClock()
        val backend = FakeBackend(clock, outputNs = 200_000L)
        val r = runWith(backend, clock)
        // run i takes 1 ms + i us, reading the 20 features takes 0.2 ms: both are in every sample (iOS times the same)
        assertEquals((4..8).map { 1_200_000L + it * 1_000L }, r.latencyNs)
        assertEquals(1_200_000L, r.firstInferenceNs)
        assertEquals(BenchResult.TIMED_REGION, r.timedRegion)
        assertEquals("inference+read_features", r.toJson().getString("timed_region"))
    }

    @Test
    fun progressIsReportedAtMostFourTimesASecondAndNeverInsideASample() {
        val clock = FakeClock()
        val plan = Plan.parse(PlanJson.valid(warmup = 0, iterations = 20).toString())
        val calls = mutableListOf<Pair<Int, Long>>()
        val backend = FakeBackend(clock, runNs = { 100_000_000L }) // 100 ms a run: 2 s in all
        BenchRunner(clock).runOne(plan, plan.runs[0], FakeEnvironment(), { backend }, { fixed },
            progress = Progress { _, done, _ -> calls.add(done to clock.now) })
        assertTrue("at most one report per 250 ms (+ the last): $calls", calls.size <= 2_000 / 250 + 1)
        assertEquals(20, calls.last().first)
        // a report happens after a sample ended: the clock has not moved since the backend returned
        assertTrue(calls.zipWithNext().all { (a, b) -> b.second - a.second >= 250_000_000L || b.first == 20 })
    }

    @Test
    fun launchIdRunKeyAndGpuSettingsAreWrittenIntoTheResult() {
        val clock = FakeClock()
        val plan = Plan.parse(PlanJson.valid(units = listOf("cpu", "gpu")).toString())
        val cpu = BenchRunner(clock).runOne(plan, plan.runs[0], FakeEnvironment(), { FakeBackend(clock) }, { fixed },
            launchId = "20250302T091500-3fa9c1")
        assertEquals("20250302T091500-3fa9c1", cpu.launchId)
        assertEquals("00-tiny-tflite-fp32-cpu", cpu.runKey)
        assertNull("no GPU, no delegate options", cpu.runtime.options)
        val gpu = BenchRunner(clock).runOne(plan, plan.runs[1], FakeEnvironment(), { FakeBackend(clock) }, { fixed })
        // the plan gave no gpu_options: an fp32 artifact is run without fp16 precision loss, tuned for many runs
        assertEquals(mapOf("precision_loss_allowed" to false, "inference_preference" to "sustained_speed"),
            gpu.runtime.options)
        val json = gpu.toJson()
        assertTrue(json.isNull("launch_id"))
        assertEquals(false, json.getJSONObject("runtime").getJSONObject("options").getBoolean("precision_loss_allowed"))
    }
}
