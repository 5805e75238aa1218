package org.oculardeploy.bench

import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assume.assumeTrue
import org.junit.Test
import org.junit.runner.RunWith

/**
 * Runs a plan on the device under test (device farms): the bundled assets plan, or
 * `adb shell am instrument -w -e plan /sdcard/.../plan.json org.oculardeploy.bench.test/androidx.test.runner.AndroidJUnitRunner`.
 */
@RunWith(AndroidJUnit4::class)
class PlanInstrumentedTest {
    @Test
    fun runsThePlanAndWritesOneResultPerRun() {
        val context = InstrumentationRegistry.getInstrumentation().targetContext
        val arg = InstrumentationRegistry.getArguments().getString("plan")
        val session = try {
            HarnessSession(context, arg)
        } catch (e: java.io.IOException) {
            null
        }
        assumeTrue("no plan bundled or passed with -e plan: skipped, nothing was timed", session != null)
        val files = session!!.run { _, _, _ -> }
        assertEquals(session.plan.runs.size, files.size)
        for (f in files) {
            val r = JSONObject(f.readText())
            assertEquals("${f.name}: ${r.opt("error")}", "ok", r.getString("status"))
        }
    }
}
