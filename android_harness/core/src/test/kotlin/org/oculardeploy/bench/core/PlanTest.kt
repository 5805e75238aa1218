package org.oculardeploy.bench.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class PlanTest {
    private fun rejects(fragment: String, mutate: (org.json.JSONObject) -> Unit) {
        val o = PlanJson.valid()
        mutate(o)
        try {
            Plan.parse(o.toString())
            fail("expected a PlanException mentioning '$fragment'")
        } catch (e: PlanException) {
            assertTrue("'${e.message}' should mention '$fragment'", e.message!!.contains(fragment))
        }
    }

    @Test
    fun parsesWhatDeployBenchPlanWrites() {
        val p = Plan.parse(PlanJson.valid(units = listOf("cpu", "gpu")).toString())
        assertEquals("android-20250302T091500", p.planId)
        assertEquals(Protocol(3, 5, "image", null, 0), p.protocol)
        assertEquals(listOf("cpu", "gpu"), p.runs.map { it.computeUnits })
        assertEquals(4, p.runs[0].threads)
        assertNull(p.runs[1].threads)
        assertEquals(12, p.runs[0].input.elementCount)
        assertEquals(20, p.runs[0].outputDim)
        assertEquals(listOf(0.0, 0.5), p.runs[0].referenceSample)
    }

    @Test
    fun namesTheBadField() {
        rejects("plan.protocol is missing") { it.remove("protocol") }
        rejects("plan_version 2 is not supported") { it.put("plan_version", 2) }
        rejects("protocol.iterations must be >= 1") { it.getJSONObject("protocol").put("iterations", 0) }
        rejects("plan.protocol.warmup must be an integer") { it.getJSONObject("protocol").put("warmup", "ten") }
        rejects("must be relative to the plan folder") {
            it.getJSONArray("runs").getJSONObject(0).getJSONObject("artifact").put("path", "../../secret.tflite")
        }
        rejects("duplicate keys") { it.getJSONArray("runs").put(it.getJSONArray("runs").getJSONObject(0)) }
        rejects("plan.runs is empty") { it.put("runs", org.json.JSONArray()) }
    }

    @Test
    fun rejectsText() {
        try {
            Plan.parse("{\"plan_version\": 1,")
            fail("truncated JSON must not parse")
        } catch (e: PlanException) {
            assertTrue(e.message!!.startsWith("plan.json is not a JSON object"))
        }
    }

    @Test
    fun seededPixelsMatchTheDocumentedSplitMix64() {
        val a = SeededPixels.generate(1000, 0)
        assertEquals(226f, a[0]) // worked example in SeededPixels' comment, computed in Python
        assertTrue(a.all { it in 0f..255f && it == Math.floor(it.toDouble()).toFloat() })
        assertTrue(a.toList() == SeededPixels.generate(1000, 0).toList())
        assertTrue(a.toList() != SeededPixels.generate(1000, 1).toList())
        assertTrue("values spread over 0..255", a.toSet().size > 200)
    }

    @Test
    fun gpuOptionsComeFromThePlanOrAnExplicitDefault() {
        val o = PlanJson.valid(units = listOf("cpu", "gpu"))
        o.getJSONArray("runs").getJSONObject(1).put("gpu_options",
            org.json.JSONObject().put("precision_loss_allowed", true).put("inference_preference", "fast_single_answer"))
        val p = Plan.parse(o.toString())
        assertNull(p.runs[0].effectiveGpuOptions)
        assertEquals(GpuOptions(true, "fast_single_answer"), p.runs[1].effectiveGpuOptions)
        assertEquals(GpuOptions(true, "sustained_speed"), GpuOptions.defaultFor("fp16"))
        assertEquals(GpuOptions(false, "sustained_speed"), GpuOptions.defaultFor("fp32"))
        rejects("gpu_options.inference_preference must be one of") {
            it.getJSONArray("runs").getJSONObject(0).put("gpu_options",
                org.json.JSONObject().put("precision_loss_allowed", true).put("inference_preference", "fastest"))
        }
    }

    @Test
    fun aRestoredActivityOrAnAlreadyStartedLaunchNeverStartsASecondBenchmark() {
        val plan = "/sdcard/Android/data/org.oculardeploy.bench/files/plans/p1/plan.json"
        assertTrue(LaunchGuard.shouldAutoStart(false, plan, "L1", emptySet()))
        assertTrue("started by hand, without a launch id", LaunchGuard.shouldAutoStart(false, plan, null, emptySet()))
        assertTrue(!LaunchGuard.shouldAutoStart(true, plan, "L1", emptySet())) // dark mode, font scale, locale, rotation
        assertTrue(!LaunchGuard.shouldAutoStart(false, plan, "L1", setOf("L1"))) // the intent re-delivered from recents
        assertTrue(!LaunchGuard.shouldAutoStart(false, null, null, emptySet())) // opened from the launcher
    }
}
