package org.oculardeploy.bench

import android.content.Context
import org.oculardeploy.bench.core.BenchRunner
import org.oculardeploy.bench.core.Plan
import org.oculardeploy.bench.core.PlanExecutor
import org.oculardeploy.bench.core.PlanImport
import org.oculardeploy.bench.core.Progress
import org.oculardeploy.bench.core.ResultWriter
import java.io.File

/**
 * Runs a plan with LiteRT and writes <external files>/results/<run_id>.json per run, failures included.
 * [launchId] (the `launch_id` extra of `deploy bench android`) goes into every result.
 */
class HarnessSession(private val context: Context, planArg: String?, val launchId: String? = null) {
    private val located = PlanFolder.locate(importIfPushed(context, planArg), context.assets)
    val folder: PlanFolder = located.first
    val plan: Plan = Plan.parse(folder.readText(located.second))

    @Volatile
    var cancelled = false

    /** `adb pull /sdcard/Android/data/org.oculardeploy.bench/files/results` (no permission needed). */
    fun resultsDir(): File = context.getExternalFilesDir("results") ?: File(context.filesDir, "results")

    fun run(progress: Progress): List<File> {
        val env = AndroidEnvironment(context)
        return PlanExecutor(BenchRunner(), ResultWriter(resultsDir()), env).execute(
            plan,
            { run -> LiteRtBackend(run) { folder.map(run.artifact.path) } },
            { run -> run.fixedInput?.let { folder.pixels(it, run.input) } },
            progress,
            shouldStop = {
                when {
                    cancelled -> "cancelled"
                    env.thermalState() == "critical" -> "thermal state critical"
                    else -> null
                }
            },
            launchId = launchId,
        )
    }
}

/**
 * A plan file outside the app's own folders (`deploy bench android` pushes to /data/local/tmp) is copied
 * into files/plans first ([PlanImport] says why that works on Android 5 to 15); assets and plans already
 * in the app's folders are used where they are.
 */
internal fun importIfPushed(context: Context, planArg: String?): String? {
    if (planArg.isNullOrBlank() || planArg.startsWith(PlanFolder.ASSET_PREFIX)) return planArg
    val file = File(planArg)
    val own = listOfNotNull(context.filesDir, context.getExternalFilesDir(null))
    if (!PlanImport.needsImport(file, own)) return planArg
    return PlanImport.copy(file, File(context.filesDir, "plans")).path
}
