package org.oculardeploy.bench

import android.app.Activity
import android.content.Context
import android.os.Bundle
import android.os.Handler
import android.os.Looper
import android.view.WindowManager
import android.widget.Button
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.TextView
import org.oculardeploy.bench.core.LaunchGuard

/**
 * One screen: the plan, a Run button, progress. `adb shell am start -n
 * org.oculardeploy.bench/.MainActivity --es plan /data/local/tmp/ocularbench/plans/P/plan.json
 * --es launch_id L` (what `deploy bench android` runs; the app copies the plan into its own files first;
 * or `--es plan asset:bench_plan/plan.json`) runs the plan at once.
 *
 * The benchmark belongs to the process, not to an activity: [RunningSession] holds it, and an activity
 * created again (a configuration change the manifest does not declare, the intent re-delivered from
 * recents) re-attaches to it instead of starting a second one ([LaunchGuard]).
 */
class MainActivity : Activity() {
    private lateinit var status: TextView
    private lateinit var progressText: TextView
    private lateinit var bar: ProgressBar
    private lateinit var button: Button

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        status = TextView(this)
        progressText = TextView(this)
        bar = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal).apply { max = 1000 }
        button = Button(this).apply { text = "Run" }
        val planArg = intent.getStringExtra(EXTRA_PLAN)
        val launchId = intent.getStringExtra(EXTRA_LAUNCH_ID)
        button.setOnClickListener { RunningSession.session?.let { it.cancelled = true } ?: start(planArg, null) }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setPadding(48, 96, 48, 48)
            listOf(status, button, bar, progressText).forEach { addView(it) }
        })
        describe(planArg)
        RunningSession.attach(this)
        if (RunningSession.session != null) {
            button.text = "Stop"
        } else if (LaunchGuard.shouldAutoStart(savedInstanceState != null, planArg, launchId, startedLaunches())) {
            start(planArg, launchId)
        }
    }

    override fun onDestroy() {
        RunningSession.detach(this)
        super.onDestroy()
    }

    private fun describe(planArg: String?) {
        status.text = try {
            val p = HarnessSession(this, planArg).plan
            "Plan ${p.planId}: ${p.runs.size} runs, ${p.protocol.warmup} warm-up + ${p.protocol.iterations} timed each"
        } catch (e: Exception) {
            "No usable plan ($planArg): ${e.message}. Run `deploy bench plan ... --device android`."
        }
    }

    /** Launch ids already started in this install (kept across process deaths, so recents cannot replay one). */
    private fun startedLaunches(): Set<String> =
        getSharedPreferences(PREFS, Context.MODE_PRIVATE).getStringSet(STARTED, emptySet()) ?: emptySet()

    private fun markStarted(launchId: String) {
        val prefs = getSharedPreferences(PREFS, Context.MODE_PRIVATE)
        val ids = (prefs.getStringSet(STARTED, emptySet()) ?: emptySet()).toMutableSet().apply { add(launchId) }
        prefs.edit().putStringSet(STARTED, ids).commit() // commit, not apply: it must hold before the run starts
    }

    private fun start(planArg: String?, launchId: String?) {
        val s = try {
            HarnessSession(applicationContext, planArg, launchId)
        } catch (e: Exception) {
            status.text = "Cannot start: ${e.message}"
            return
        }
        launchId?.let { markStarted(it) }
        RunningSession.start(s)
    }

    internal fun showRunning() {
        button.text = "Stop"
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
    }

    internal fun showProgress(text: String, fraction: Float) {
        progressText.text = text
        bar.progress = (fraction * 1000).toInt()
    }

    internal fun showDone(outcome: String) {
        button.text = "Run"
        progressText.text = outcome
        window.clearFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
    }

    companion object {
        const val EXTRA_PLAN = "plan"
        const val EXTRA_LAUNCH_ID = "launch_id"
        private const val PREFS = "ocularbench"
        private const val STARTED = "started_launch_ids"
    }
}

/**
 * The one benchmark of this process and the activity showing it. The worker thread posts to the main
 * thread; whichever MainActivity is attached then draws it. The core runner already limits progress
 * reports to a few a second, between timed samples.
 */
object RunningSession {
    @Volatile
    var session: HarnessSession? = null
        private set
    private var activity: MainActivity? = null // touched on the main thread only
    private val main = Handler(Looper.getMainLooper())

    fun attach(a: MainActivity) {
        activity = a
    }

    fun detach(a: MainActivity) {
        if (activity === a) activity = null
    }

    fun start(s: HarnessSession) {
        if (session != null) return
        session = s
        activity?.showRunning()
        Thread {
            val outcome = try {
                val files = s.run { key, done, total ->
                    val index = s.plan.runs.indexOfFirst { it.key == key }
                    val fraction = (index + done.toFloat() / total) / s.plan.runs.size
                    main.post { activity?.showProgress("$key: $done/$total", fraction) }
                }
                "Wrote ${files.size} results to ${s.resultsDir()}"
            } catch (e: Exception) {
                "Stopped: ${e.message}"
            }
            android.util.Log.i("OcularBench", outcome)
            main.post {
                session = null
                activity?.showDone(outcome)
            }
        }.start()
    }
}
