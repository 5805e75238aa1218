package org.oculardeploy.bench

import android.app.Activity
import android.os.Bundle
import android.view.WindowManager
import android.widget.Button
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.TextView

/**
 * One screen: the plan, a Run button, progress. `adb shell am start -n
 * org.oculardeploy.bench/.MainActivity --es plan /sdcard/Android/data/org.oculardeploy.bench/files/bench_plan/plan.json`
 * (or `--es plan asset:bench_plan/plan.json`) runs the plan at once.
 */
class MainActivity : Activity() {
    private lateinit var status: TextView
    private lateinit var progressText: TextView
    private lateinit var bar: ProgressBar
    private lateinit var button: Button
    private var session: HarnessSession? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        status = TextView(this)
        progressText = TextView(this)
        bar = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal).apply { max = 1000 }
        button = Button(this).apply { text = "Run" }
        button.setOnClickListener { session?.let { it.cancelled = true } ?: start(intent.getStringExtra("plan")) }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setPadding(48, 96, 48, 48)
            listOf(status, button, bar, progressText).forEach { addView(it) }
        })
        describe(intent.getStringExtra("plan"))
        if (intent.hasExtra("plan")) start(intent.getStringExtra("plan"))
    }

    private fun describe(planArg: String?) {
        status.text = try {
            val p = HarnessSession(this, planArg).plan
            "Plan ${p.planId}: ${p.runs.size} runs, ${p.protocol.warmup} warm-up + ${p.protocol.iterations} timed each"
        } catch (e: Exception) {
            "No usable plan ($planArg): ${e.message}. Run `deploy bench plan ... --device android`."
        }
    }

    private fun start(planArg: String?) {
        val s = try {
            HarnessSession(this, planArg)
        } catch (e: Exception) {
            status.text = "Cannot start: ${e.message}"
            return
        }
        session = s
        button.text = "Stop"
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
        Thread {
            val outcome = try {
                val files = s.run { key, done, total ->
                    val index = s.plan.runs.indexOfFirst { it.key == key }
                    val fraction = (index + done.toFloat() / total) / s.plan.runs.size
                    runOnUiThread {
                        progressText.text = "$key: $done/$total"
                        bar.progress = (fraction * 1000).toInt()
                    }
                }
                "Wrote ${files.size} results to ${s.resultsDir()}"
            } catch (e: Exception) {
                "Stopped: ${e.message}"
            }
            runOnUiThread {
                session = null
                button.text = "Run"
                progressText.text = outcome
                window.clearFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
            }
            android.util.Log.i("OcularBench", outcome)
        }.start()
    }
}
