package org.oculardeploy.bench.core

/** Measures named preparation phases with the runner's clock, so backends never time themselves. */
interface PhaseTimer {
    /** Runs [block] and records its duration as `load_ns` ([Phase.LOAD]) or `compile_ns` ([Phase.COMPILE]). */
    fun <T> time(phase: Phase, block: () -> T): T
}

enum class Phase { LOAD, COMPILE }

/**
 * One runtime running one artifact (LiteRT on Android; a fake with known delays in the tests).
 *
 * Lifecycle: [prepare] once (load the file, build the interpreter and delegates), then
 * [setInput] + [run] many times, [output] after a run, [close] at the end.
 */
interface InferenceBackend : AutoCloseable {
    /** results v1 `runtime.name`, e.g. "litert". */
    val runtimeName: String

    /** The runtime's version, e.g. LiteRT's "1.0.1". */
    val runtimeVersion: String

    /** Load and build the model, wrapping each phase in [timer] (a phase not timed is null in the results). */
    fun prepare(timer: PhaseTimer)

    /** Set the input: raw RGB pixels 0..255 in the plan's layout (the backend quantizes for int8 models). */
    fun setInput(pixels: FloatArray)

    /** One inference on the current input. */
    fun run()

    /**
     * The feature vector of the last [run], read back as float32. Timed with [run] (results v1 `timed_region`);
     * a backend may return the same array every time (valid until the next [run]).
     */
    fun output(): FloatArray

    /** The runtime's own duration of the last [run] (LiteRT's native invoke time), or null where it has none. */
    fun lastNativeInferenceNs(): Long? = null

    /** Where the graph runs, known after [prepare] (results v2 `placement`). */
    fun placement(): Placement = Placement.unknown("the runtime does not report where its nodes run")
}

/** A monotonic clock in nanoseconds (System.nanoTime on the device, a fake one in tests). */
fun interface NanoClock {
    fun nanoTime(): Long

    companion object {
        val SYSTEM = NanoClock { System.nanoTime() }
    }
}
