package org.oculardeploy.bench.core

/** What the app knows about where it runs: device facts, app version, and the thermal state now. */
interface Environment {
    val device: DeviceInfo
    val app: AppInfo

    /** One of nominal, fair, serious, critical, unknown (results v1 `thermal_state_*`). */
    fun thermalState(): String
}

/** Progress of one run: [done] of [total] timed iterations. */
fun interface Progress {
    fun update(runKey: String, done: Int, total: Int)
}

private class StopRequested(val reason: String) : Exception(reason)

/**
 * The timing loop: prepare (load/compile, timed), first inference (timed, on the fixed input so
 * `feature_sample` can be checked against PyTorch), `warmup` untimed runs, then `iterations`
 * runs each timed alone with a monotonic clock. Every outcome, failures included, is a [BenchResult].
 *
 * One sample is [BenchResult.TIMED_REGION]: `run()` and `output()` (every feature read back as float32),
 * exactly what the iOS runner times. Progress is reported between samples, never inside one, and at most
 * once per [progressIntervalNs] (plus the last sample): each report makes the app redraw on its UI thread,
 * which competes with the next timed run.
 */
class BenchRunner(
    private val clock: NanoClock = NanoClock.SYSTEM,
    private val progressIntervalNs: Long = DEFAULT_PROGRESS_INTERVAL_NS,
) {

    /**
     * Runs [run] of [plan] once.
     *
     * @param openBackend creates the backend (its exceptions become an `error` result)
     * @param fixedPixels the run's fixed input as raw pixels, or null when the plan has none
     * @param shouldStop polled before every timed iteration; a reason ends the run as `partial`
     */
    fun runOne(
        plan: Plan,
        run: PlanRun,
        env: Environment,
        openBackend: () -> InferenceBackend,
        fixedPixels: () -> FloatArray?,
        progress: Progress = Progress { _, _, _ -> },
        shouldStop: () -> String? = { null },
        launchId: String? = null,
    ): BenchResult {
        val proto = plan.protocol
        val thermalStart = env.thermalState()
        val samples = ArrayList<Long>(proto.iterations)
        var loadNs: Long? = null
        var compileNs: Long? = null
        var firstNs: Long? = null
        var featureDim: Int? = null
        var featureSample: List<Double>? = null
        var notes: String? = null
        var error: String? = null
        var runtimeName = if (run.artifact.format == "coreml") "coreml" else "litert"
        var runtimeVersion = "unknown"
        var backend: InferenceBackend? = null
        try {
            val b = openBackend()
            backend = b
            runtimeName = b.runtimeName
            runtimeVersion = b.runtimeVersion
            b.prepare(object : PhaseTimer {
                override fun <T> time(phase: Phase, block: () -> T): T {
                    val t0 = clock.nanoTime()
                    val value = block()
                    val dt = clock.nanoTime() - t0
                    when (phase) {
                        Phase.LOAD -> loadNs = (loadNs ?: 0L) + dt
                        Phase.COMPILE -> compileNs = (compileNs ?: 0L) + dt
                    }
                    return value
                }
            })
            val fixed = fixedPixels()
            val n = run.input.elementCount
            fixed?.let { require(it.size == n) { "fixed input has ${it.size} values; ${run.input.name} takes $n" } }
            val timed = when (proto.inputSource) {
                "image" -> fixed ?: throw IllegalStateException("input_source is image but run ${run.key} has no fixed input")
                else -> SeededPixels.generate(n, proto.inputSeed ?: 0L)
            }
            b.setInput(fixed ?: timed)
            val (first, out) = timeOne(b)
            firstNs = first
            featureDim = out.size
            if (fixed != null) {
                val head = out.take(BenchResult.FEATURE_SAMPLE_LEN).map { it.toDouble() }
                // JSON has no NaN: keep the timings, say why the sample is missing.
                if (head.all { it.isFinite() }) featureSample = head else notes = "the fixed input's features hold NaN or infinity"
            }
            b.setInput(timed)
            repeat(proto.warmup) { b.run(); b.output() }
            var lastReport = clock.nanoTime()
            for (i in 0 until proto.iterations) {
                shouldStop()?.let { throw StopRequested(it) }
                samples.add(timeOne(b).first)
                val now = clock.nanoTime()
                if (now - lastReport >= progressIntervalNs || i + 1 == proto.iterations) {
                    progress.update(run.key, i + 1, proto.iterations)
                    lastReport = now
                }
            }
        } catch (e: StopRequested) {
            error = "stopped after ${samples.size} of ${proto.iterations} iterations: ${e.reason}"
        } catch (e: InterruptedException) {
            Thread.currentThread().interrupt()
            error = "interrupted after ${samples.size} of ${proto.iterations} iterations"
        } catch (e: Throwable) { // a failed run must still write a file, whatever failed
            error = "${e.javaClass.simpleName}: ${e.message ?: "no message"}" +
                if (samples.isNotEmpty()) " (after ${samples.size} of ${proto.iterations} iterations)" else ""
        } finally {
            try {
                backend?.close()
            } catch (e: Exception) {
                if (error == null) error = "closing the backend failed: ${e.message}"
            }
        }
        val status = when {
            error == null -> "ok"
            samples.isEmpty() -> "error"
            else -> "partial"
        }
        return BenchResult(
            runId = BenchResult.newRunId(plan.planId, run.key),
            status = status,
            error = error,
            createdAt = BenchResult.utcNow(),
            planId = plan.planId,
            artifact = run.artifact,
            device = env.device,
            thermalStateStart = thermalStart,
            thermalStateEnd = env.thermalState(),
            app = env.app,
            runtime = RuntimeInfo(runtimeName, runtimeVersion, run.computeUnits, run.delegate, run.threads,
                run.effectiveGpuOptions?.toMap()),
            protocol = proto,
            loadNs = loadNs,
            compileNs = compileNs,
            firstInferenceNs = firstNs,
            latencyNs = if (status == "error") emptyList() else samples.toList(),
            featureDim = featureDim,
            featureSample = featureSample,
            notes = notes,
            launchId = launchId,
            runKey = run.key,
        )
    }

    /** One sample: the inference and reading its features back (what [BenchResult.TIMED_REGION] says). */
    private fun timeOne(b: InferenceBackend): Pair<Long, FloatArray> {
        val t0 = clock.nanoTime()
        b.run()
        val features = b.output()
        return (clock.nanoTime() - t0) to features
    }

    companion object {
        /** At most four progress reports a second. */
        const val DEFAULT_PROGRESS_INTERVAL_NS = 250_000_000L
    }
}

/** Runs every run of a plan in order, writing one results file per run, failures included. */
class PlanExecutor(
    private val runner: BenchRunner,
    private val writer: ResultWriter,
    private val env: Environment,
    private val sleepMs: (Long) -> Unit = { Thread.sleep(it) },
) {
    fun execute(
        plan: Plan,
        openBackend: (PlanRun) -> InferenceBackend,
        fixedPixels: (PlanRun) -> FloatArray?,
        progress: Progress = Progress { _, _, _ -> },
        shouldStop: () -> String? = { null },
        launchId: String? = null,
    ): List<java.io.File> = plan.runs.mapIndexed { i, run ->
        if (i > 0 && plan.protocol.cooldownMs > 0) sleepMs(plan.protocol.cooldownMs)
        val result = runner.runOne(plan, run, env, { openBackend(run) }, { fixedPixels(run) }, progress, shouldStop,
            launchId)
        writer.write(result)
    }
}
