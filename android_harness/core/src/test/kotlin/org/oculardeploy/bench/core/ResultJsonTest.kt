package org.oculardeploy.bench.core

import org.json.JSONArray
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test
import java.io.File

/** The Kotlin writer against the shared fixtures (tests/fixtures/results) and the Python schema. */
class ResultJsonTest {
    private val fixturesDir = System.getProperty("fixtures.dir")?.let { File(it) }

    /** Canonical text with sorted keys, so two JSON values compare by content. */
    private fun canon(v: Any?): String = when (v) {
        is JSONObject -> v.keys().asSequence().sorted().joinToString(",", "{", "}") { "\"$it\":" + canon(v.get(it)) }
        is JSONArray -> (0 until v.length()).joinToString(",", "[", "]") { canon(v.get(it)) }
        is Number -> if (v.toDouble() == Math.floor(v.toDouble()) && v !is Double && v !is Float) v.toLong().toString() else v.toDouble().toString()
        is String -> JSONObject.quote(v)
        else -> v.toString()
    }

    @Test
    fun fixturesRoundTripThroughTheKotlinModel() {
        assumeTrue("run through run-tests.sh, which sets -Dfixtures.dir", fixturesDir != null)
        val names = listOf("ok", "error", "partial", "v2_ios", "v2_android")
        for (name in names) {
            val text = File(fixturesDir, "$name.json").readText()
            val r = BenchResult.fromJson(text)
            assertEquals(name.removePrefix("v2_").let { if (it == "ios") "ok" else if (it == "android") "partial" else it }, r.status)
            assertEquals("$name.json round trip", canon(JSONObject(text)), canon(r.toJson()))
        }
        assertEquals("iPhone11,8", BenchResult.fromJson(File(fixturesDir, "ok.json").readText()).device.identifier)
    }

    @Test
    fun nullsAreWrittenAsJsonNull() {
        val clock = FakeClock()
        val plan = Plan.parse(PlanJson.valid().toString())
        val r = BenchRunner(clock).runOne(plan, plan.runs[0], FakeEnvironment(),
            { FakeBackend(clock, failOnLoad = true) }, { null })
        val o = r.toJson()
        for (k in listOf("compile_ns", "first_inference_ns", "feature_dim", "feature_sample")) {
            assertTrue("$k must be present as null", o.has(k) && o.isNull(k))
        }
        assertEquals(0, o.getJSONArray("latency_ns").length())
        assertTrue("a load that threw has no duration", o.isNull("load_ns"))
    }

    @Test
    fun timestampsAreUtcIso8601() {
        assertEquals("1970-01-01T00:00:01.234Z", BenchResult.utcNow(1234))
        assertTrue(BenchResult.newRunId("p", "00-a b", "12345678") == "p.00-a_b.12345678")
    }

    /** Writes one result of each status where Python can validate them (tests/harness/test_kotlin_results.py). */
    @Test
    fun writeResultsForThePythonSchemaCheck() {
        val dir = System.getProperty("results.out.dir")?.let { File(it) }
        assumeTrue("run through run-tests.sh, which sets -Dresults.out.dir", dir != null)
        dir!!.deleteRecursively()
        val clock = FakeClock()
        val plan = Plan.parse(PlanJson.valid(units = listOf("cpu", "gpu", "nnapi")).toString())
        var polls = 0
        val files = PlanExecutor(BenchRunner(clock), ResultWriter(dir), FakeEnvironment()).execute(
            plan,
            { run -> if (run.computeUnits == "nnapi") throw IllegalStateException("NNAPI delegate failed") else FakeBackend(clock) },
            { FloatArray(12) },
            shouldStop = { if (++polls == 8) "thermal state critical" else null },
        )
        assertEquals(listOf("ok", "partial", "error"), files.map { JSONObject(it.readText()).getString("status") })
    }
}
