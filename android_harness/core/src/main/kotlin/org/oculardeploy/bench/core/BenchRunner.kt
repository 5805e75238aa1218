package org.oculardeploy.bench.core

/** What the app knows about where it runs: device facts, app version, and the thermal state now. */
interface Environment {
    val device: DeviceInfo
    val app: AppInfo

    /** One of nominal, fair, serious, critical, unknown (results v1 `thermal_state_*`). */
    fun thermalState(): String

    /** Battery, charging, low power, thermal state, foreground, screen now (results v2 `device_state`). */
    fun readState(): DeviceState? = DeviceState(null, null, device.lowPowerMode, thermalState(), null, null)

    /** This process's memory now (results v2 `memory`), or null where it cannot be read. */
    fun memory(): MemoryReading? = null
}

/** Progress of one run: [done] of [total] timed iterations. */
fun interface Progress {
    fun update(runKey: String, done: Int, total: Int)
}

private class StopRequested(val reason: String) : Exception(reason)

/** Sums each phase's durations with the runner's clock (a backend never times itself). */
private class PhaseSum(private val clock: NanoClock) : PhaseTimer {
    var loadNs: Long? = null
    var compileNs: Long? = null
    val totalNs: Long? get() = if (loadNs == null && compileNs == null) null else (loadNs ?: 0L) + (compileNs ?: 0L)

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
}

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
        val phases = PhaseSum(clock)
        val state = StateRecorder(clock) { env.readState() }
        state.sample()
        val memBefore = safely { env.memory() }
        val memDuring = ArrayList<MemoryReading>()
        var native: ArrayList<Long>? = ArrayList(proto.iterations)
        val warmLoads = ArrayList<Long>()
        var placement = Placement.unknown("the run failed before the model was built")
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
            b.prepare(phases)
            placement = safely { b.placement() } ?: Placement.unknown("the backend could not say")
            safely { env.memory() }?.let { memDuring.add(it) }
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
            state.sample()
            var lastReport = clock.nanoTime()
            for (i in 0 until proto.iterations) {
                shouldStop()?.let { throw StopRequested(it) }
                samples.add(timeOne(b).first)
                val nativeNs = safely { b.lastNativeInferenceNs() }
                if (nativeNs == null) native = null else native?.add(nativeNs)
                val now = clock.nanoTime()
                if (now - lastReport >= progressIntervalNs || i + 1 == proto.iterations) {
                    progress.update(run.key, i + 1, proto.iterations)
                    state.sample() // between samples, at the progress cadence: never inside a timed one
                    lastReport = now
                }
            }
            safely { env.memory() }?.let { memDuring.add(it) }
            // Warm loads: the same model loaded again (already compiled, caches warm), each in a fresh backend,
            // after the timed loop and with the timed backend closed, so neither disturbs the other.
            backend = null
            b.close()
            try {
                repeat(WARM_LOADS) {
                    val w = openBackend()
                    try {
                        val sum = PhaseSum(clock)
                        w.prepare(sum)
                        sum.totalNs?.let { warmLoads.add(it) }
                    } finally {
                        w.close()
                    }
                }
            } catch (e: Exception) { // the timed run stands; only the warm loads are cut short
                notes = listOfNotNull(notes, "warm load ${warmLoads.size + 1} failed: ${e.javaClass.simpleName}: ${e.message}")
                    .joinToString("; ")
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
        state.sample()
        val memAfter = safely { env.memory() }
        val v2 = V2Fields(
            coldLoadNs = phases.totalNs,
            warmLoadNs = warmLoads.toList(),
            nativeLatencyNs = if (status == "error") null else native?.toList()?.takeIf { it.size == samples.size },
            memory = MemoryResult.of(memBefore, memDuring, memAfter)?.toJson(),
            placement = placement.toJson(),
            deviceState = state.toJson(),
        )
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
            loadNs = phases.loadNs,
            compileNs = phases.compileNs,
            firstInferenceNs = firstNs,
            latencyNs = if (status == "error") emptyList() else samples.toList(),
            featureDim = featureDim,
            featureSample = featureSample,
            notes = notes,
            launchId = launchId,
            runKey = run.key,
            v2 = v2,
        )
    }

    /** A measurement beside the timings must never fail the run: null when it throws. */
    private fun <T> safely(read: () -> T?): T? = try {
        read()
    } catch (e: Exception) {
        null
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

        /** Warm loads after the timed loop (toolchain/bench/measures.py WARM_LOADS). */
        const val WARM_LOADS = 3
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
