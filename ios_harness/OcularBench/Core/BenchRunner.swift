import Foundation

/// The timing loop: prepare (compile/load, timed), first inference (timed, on the fixed input so
/// `feature_sample` can be checked against PyTorch), `warmup` untimed runs, then `iterations`
/// runs each timed alone. Every outcome, failures included, becomes a `BenchResult`.
///
/// One sample is `BenchResult.timedRegionValue`: `run()` and `output()` (every feature read back as
/// float32), exactly what the Android runner times. Each iteration drains its own autorelease pool:
/// Core ML hands back autoreleased feature providers, and a whole plan on one GCD work item would
/// otherwise keep every one of them alive until the plan ends (1 GB on an iPhone 6). Progress is
/// reported between samples, never inside one, at most once per `progressIntervalNs` (plus the last).
final class BenchRunner {
    /// At most four progress reports a second: each one makes the app redraw on the main thread.
    static let defaultProgressIntervalNs: UInt64 = 250_000_000
    /// Warm loads after the timed loop (toolchain/bench/measures.py WARM_LOADS).
    static let warmLoads = 3

    private let clock: NanoClock
    private let progressIntervalNs: UInt64

    init(clock: NanoClock = MachClock(), progressIntervalNs: UInt64 = BenchRunner.defaultProgressIntervalNs) {
        self.clock = clock
        self.progressIntervalNs = progressIntervalNs
    }

    func runOne(plan: BenchPlan,
                run: PlanRun,
                environment: BenchEnvironment,
                openBackend: () throws -> InferenceBackend,
                fixedPixels: () throws -> [Float]?,
                progress: (Int, Int) -> Void = { _, _ in },
                shouldStop: () -> String? = { nil },
                launchId: String? = nil) -> BenchResult {
        let timing = plan.timing
        let thermalStart = environment.thermalState()
        let timer = PhaseTimer(clock: clock)
        var samples = [UInt64]()
        samples.reserveCapacity(timing.iterations)
        var firstNs: UInt64?
        var featureDim: Int?
        var featureSample: [Double]?
        var notes: String?
        var failure: String?
        var runtimeName = "coreml"
        var runtimeVersion = "unknown"
        var backend: InferenceBackend?
        let state = StateRecorder(clock: clock) { environment.readState() }
        state.sample()
        let memBefore = environment.memory()
        var memDuring = [MemoryReading]()
        var warmLoads = [UInt64]()
        var placement = PlacementRecord.unknown("the run failed before the model was built")
        do {
            let b = try openBackend()
            backend = b
            runtimeName = b.runtimeName
            runtimeVersion = b.runtimeVersion
            try b.prepare(timer: timer)
            placement = b.placement()
            if let m = environment.memory() { memDuring.append(m) }
            let fixed = try fixedPixels()
            let count = run.input.elementCount
            if let f = fixed, f.count != count {
                throw HarnessError.badInput("fixed input has \(f.count) values; \(run.input.name) takes \(count)")
            }
            let timed: [Float]
            if timing.inputSource == "image" {
                guard let f = fixed else {
                    throw HarnessError.badInput("input_source is image but run \(run.key) has no fixed input")
                }
                timed = f
            } else {
                timed = SeededPixels.generate(count: count, seed: timing.inputSeed ?? 0)
            }
            try b.setInput(fixed ?? timed)
            let (first, out) = try timeOne(b)
            firstNs = first
            featureDim = out.count
            if fixed != nil {
                let head = out.prefix(BenchResult.featureSampleLength).map { Double($0) }
                if head.allSatisfy({ $0.isFinite }) {
                    featureSample = head
                } else {
                    notes = "the fixed input's features hold NaN or infinity"
                }
            }
            try b.setInput(timed)
            for _ in 0..<timing.warmup {
                _ = try timeOne(b)
            }
            state.sample()
            var lastReport = clock.now()
            for i in 0..<timing.iterations {
                if let reason = shouldStop() {
                    throw HarnessError.stopped("stopped after \(samples.count) of \(timing.iterations) iterations: \(reason)")
                }
                samples.append(try timeOne(b).0)
                let now = clock.now()
                if now - lastReport >= progressIntervalNs || i + 1 == timing.iterations {
                    progress(i + 1, timing.iterations)
                    state.sample() // between samples, at the progress cadence: never inside a timed one
                    lastReport = now
                }
            }
            if let m = environment.memory() { memDuring.append(m) }
            // Warm loads: the same model again (compiled, caches warm), each in a fresh backend, after the
            // timed loop with the timed backend closed, so neither disturbs the other. A failure here keeps
            // the timed run and says so in notes.
            b.close()
            backend = nil
            do {
                for _ in 0..<BenchRunner.warmLoads {
                    let w = try openBackend()
                    defer { w.close() }
                    let t = PhaseTimer(clock: clock)
                    try w.prepare(timer: t)
                    if t.loadNs != nil || t.compileNs != nil {
                        warmLoads.append((t.loadNs ?? 0) + (t.compileNs ?? 0))
                    }
                }
            } catch {
                notes = [notes, "warm load \(warmLoads.count + 1) failed: \(error)"].compactMap { $0 }
                    .joined(separator: "; ")
            }
        } catch let e as HarnessError {
            failure = e.description
        } catch {
            // Core ML errors are NSErrors: keep domain, code and message.
            let ns = error as NSError
            failure = "\(ns.domain) \(ns.code): \(ns.localizedDescription)"
                + (samples.isEmpty ? "" : " (after \(samples.count) of \(timing.iterations) iterations)")
        }
        backend?.close()
        let status = failure == nil ? "ok" : (samples.isEmpty ? "error" : "partial")
        state.sample()
        let memAfter = environment.memory()
        let readings = [memBefore].compactMap { $0 } + memDuring + [memAfter].compactMap { $0 }
        let memory: MemoryRecord? = readings.isEmpty ? nil : MemoryRecord(
            kind: "phys_footprint", beforeBytes: memBefore?.bytes, afterBytes: memAfter?.bytes,
            peakBytes: readings.map { max($0.bytes, $0.peakBytes ?? 0) }.max(),
            nativeHeapBeforeBytes: nil, nativeHeapAfterBytes: nil)
        var device = environment.deviceInfo()
        device.thermalStateStart = thermalStart
        device.thermalStateEnd = environment.thermalState()
        return BenchResult(
            runId: BenchResult.newRunId(planId: plan.planId, key: run.key),
            status: status,
            error: failure,
            createdAt: BenchResult.utcTimestamp(),
            planId: plan.planId,
            artifact: ArtifactInfo(name: run.artifact.name, format: run.artifact.format, sha256: run.artifact.sha256,
                                   precision: run.artifact.precision, sizeBytes: run.artifact.sizeBytes),
            device: device,
            app: environment.appInfo,
            runtime: RuntimeInfo(name: runtimeName, version: runtimeVersion, computeUnits: run.computeUnits,
                                 delegate: run.delegate, threads: run.threads),
            timing: timing,
            loadNs: timer.loadNs,
            compileNs: timer.compileNs,
            firstInferenceNs: firstNs,
            latencyNs: status == "error" ? [] : samples,
            featureDim: featureDim,
            featureSample: featureSample,
            notes: notes,
            launchId: launchId,
            runKey: run.key,
            timedRegion: BenchResult.timedRegionValue,
            coldLoadNs: timer.loadNs == nil && timer.compileNs == nil ? nil : (timer.loadNs ?? 0) + (timer.compileNs ?? 0),
            warmLoadNs: warmLoads,
            nativeLatencyNs: nil, // Core ML reports no time of its own
            memory: memory,
            placement: placement,
            deviceState: state.record)
    }

    /// One sample: the prediction and reading its features back, inside its own autorelease pool.
    private func timeOne(_ b: InferenceBackend) throws -> (UInt64, [Float]) {
        return try drainingAutoreleasePool {
            let t0 = clock.now()
            try b.run()
            let features = try b.output()
            return (clock.now() - t0, features)
        }
    }
}

/// `autoreleasepool` where there is an Objective-C runtime (the devices); the body alone elsewhere
/// (the Foundation-only core built with SwiftPM on Linux has nothing autoreleased).
func drainingAutoreleasePool<T>(_ body: () throws -> T) rethrows -> T {
    #if canImport(ObjectiveC)
    return try autoreleasepool { try body() }
    #else
    return try body()
    #endif
}

/// Writes `<directory>/<run_id>.json` atomically (`Data.write(.atomic)`: a temp file, then rename).
struct ResultWriter {
    let directory: URL

    static func documentsResults() throws -> ResultWriter {
        let docs = try FileManager.default.url(for: .documentDirectory, in: .userDomainMask,
                                               appropriateFor: nil, create: true)
        return ResultWriter(directory: docs.appendingPathComponent("results", isDirectory: true))
    }

    func write(_ result: BenchResult) throws -> URL {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(result)
        let url = directory.appendingPathComponent("\(result.runId).json")
        try data.write(to: url, options: .atomic)
        return url
    }
}

/// Runs every run of a plan in order and writes one results file per run, failures included.
final class PlanExecutor {
    private let runner: BenchRunner
    private let writer: ResultWriter
    private let environment: BenchEnvironment
    private let sleepMs: (Int) -> Void

    init(runner: BenchRunner, writer: ResultWriter, environment: BenchEnvironment,
         sleepMs: @escaping (Int) -> Void = { ms in Thread.sleep(forTimeInterval: Double(ms) / 1000) }) {
        self.runner = runner
        self.writer = writer
        self.environment = environment
        self.sleepMs = sleepMs
    }

    func execute(plan: BenchPlan,
                 openBackend: (PlanRun) throws -> InferenceBackend,
                 fixedPixels: (PlanRun) throws -> [Float]?,
                 progress: (Int, Int, Int) -> Void = { _, _, _ in },
                 shouldStop: () -> String? = { nil },
                 launchId: String? = nil) throws -> [URL] {
        var written = [URL]()
        for (index, run) in plan.runs.enumerated() {
            if index > 0 && plan.timing.cooldownMs > 0 {
                sleepMs(plan.timing.cooldownMs)
            }
            let result = runner.runOne(plan: plan, run: run, environment: environment,
                                       openBackend: { try openBackend(run) },
                                       fixedPixels: { try fixedPixels(run) },
                                       progress: { done, total in progress(index, done, total) },
                                       shouldStop: shouldStop,
                                       launchId: launchId)
            written.append(try writer.write(result))
        }
        return written
    }
}
