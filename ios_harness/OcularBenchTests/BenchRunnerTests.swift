import XCTest
@testable import OcularBench

/// A clock that only moves when the fake backend works, so every duration is known exactly.
final class FakeClock: NanoClock {
    var current: UInt64 = 1_000_000_000
    func now() -> UInt64 {
        return current
    }
}

/// Known delays: load 7 ms, compile 30 ms, run i takes 1 ms + i us; fails at run `failAtRun`.
final class FakeBackend: InferenceBackend {
    let runtimeName = "coreml"
    let runtimeVersion = "fake"
    private let clock: FakeClock
    private let failAtRun: Int?
    private let failOnLoad: Bool
    private let runNs: UInt64?
    private let outputNs: UInt64
    var runs = 0
    var closed = false

    /// `runNs`: every run takes this long (default 1 ms + i us); `outputNs`: reading the features back.
    init(clock: FakeClock, failAtRun: Int? = nil, failOnLoad: Bool = false, runNs: UInt64? = nil, outputNs: UInt64 = 0) {
        self.clock = clock
        self.failAtRun = failAtRun
        self.failOnLoad = failOnLoad
        self.runNs = runNs
        self.outputNs = outputNs
    }

    func prepare(timer: PhaseTimer) throws {
        try timer.time(.compile) { clock.current += 30_000_000 }
        try timer.time(.load) {
            clock.current += 7_000_000
            if failOnLoad {
                throw HarnessError.unsupported("model file is truncated")
            }
        }
    }

    func setInput(_ pixels: [Float]) throws {}

    func run() throws {
        if failAtRun == runs {
            throw HarnessError.unsupported("GPU lost")
        }
        clock.current += runNs ?? (1_000_000 + UInt64(runs) * 1_000)
        runs += 1
    }

    func output() throws -> [Float] {
        clock.current += outputNs
        return (0..<20).map { Float($0) * 0.5 }
    }

    func close() {
        closed = true
    }
}

final class FakeEnvironment: BenchEnvironment {
    private var thermal = ["nominal", "fair"]
    let appInfo = AppInfo(name: "OcularBench", version: "1.0", build: "1")

    func deviceInfo() -> DeviceInfo {
        return DeviceInfo(platform: "ios", identifier: "iPhone7,2", marketingName: "iPhone 6", osVersion: "12.5.7",
                          thermalStateStart: "unknown", thermalStateEnd: "unknown", lowPowerMode: false,
                          batteryState: "charging", cpu: nil, cores: 2)
    }

    func thermalState() -> String {
        return thermal.count > 1 ? thermal.removeFirst() : thermal[0]
    }
}

/// Reports memory and a full device state, so the runner's v2 fields can be checked.
final class MeasuredEnvironment: BenchEnvironment {
    let appInfo = AppInfo(name: "OcularBench", version: "1.0", build: "1")
    var footprint: UInt64 = 40_000_000
    var foreground = true

    func deviceInfo() -> DeviceInfo {
        return FakeEnvironment().deviceInfo()
    }

    func thermalState() -> String {
        return "nominal"
    }

    func readState() -> DeviceStateReading? {
        return DeviceStateReading(batteryLevel: 0.8, charging: false, lowPowerMode: false, thermalState: "nominal",
                                  foreground: foreground, screenOn: nil)
    }

    func memory() -> MemoryReading? {
        footprint += 1_000_000
        return MemoryReading(bytes: footprint, peakBytes: footprint + 5_000_000)
    }
}

final class BenchRunnerTests: XCTestCase {
    func testV2FieldsWarmLoadsMemoryAndDeviceState() throws {
        let clock = FakeClock()
        let p = try plan()
        var opened = 0
        let env = MeasuredEnvironment()
        let r = BenchRunner(clock: clock).runOne(plan: p, run: p.runs[0], environment: env,
                                                 openBackend: { opened += 1; return FakeBackend(clock: clock) },
                                                 fixedPixels: { [Float](repeating: 1, count: 12) })
        XCTAssertEqual(r.schemaVersion, 2)
        XCTAssertEqual(r.coldLoadNs, 37_000_000)
        XCTAssertEqual(r.warmLoadNs, [37_000_000, 37_000_000, 37_000_000])
        XCTAssertEqual(opened, 1 + BenchRunner.warmLoads)
        XCTAssertNil(r.nativeLatencyNs)
        XCTAssertEqual(r.memory?.kind, "phys_footprint")
        XCTAssertEqual(r.memory?.beforeBytes, 41_000_000)
        XCTAssertEqual(r.memory?.peakBytes, 49_000_000) // the ledger's peak of the last reading
        XCTAssertEqual(r.placement?.source, "unknown")
        XCTAssertEqual(r.deviceState?.stayedForeground, true)
        XCTAssertNil(r.deviceState?.screenStayedOn) // iOS cannot tell: null, not true
        XCTAssertGreaterThanOrEqual(r.deviceState?.samples.count ?? 0, 3)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r), options: []) as? [String: Any]
        XCTAssertTrue(json?["native_latency_ns"] is NSNull)
        XCTAssertNotNil(json?["device_state"] as? [String: Any])
    }

    private func plan(iterations: Int = 5, warmup: Int = 3) throws -> BenchPlan {
        let json = """
        {"plan_version": 1, "plan_id": "iphone6-20250301T120000", "created_at": "2025-03-01T12:00:00Z",
         "device": "iphone6", "platform": "ios",
         "protocol": {"warmup": \(warmup), "iterations": \(iterations), "input_source": "image", "input_seed": null, "cooldown_ms": 0},
         "inputs": ["inputs/fixed_0a1b2c3d.png"],
         "runs": [{"key": "00-tiny-all", "compute_units": "all", "delegate": null, "threads": null,
                   "artifact": {"name": "tiny", "format": "coreml", "path": "artifacts/tiny/tiny.mlmodel",
                                "sha256": "\(String(repeating: "ab", count: 32))", "precision": "fp16", "size_bytes": 10},
                   "input": {"name": "pixels", "shape": [3, 2, 2], "layout": "chw", "dtype": "float32"},
                   "output": {"name": "features", "dim": 20}, "fixed_input": "inputs/fixed_0a1b2c3d.png",
                   "reference_sample": [0.0, 0.5]}]}
        """
        return try BenchPlan.decode(Data(json.utf8), source: "test plan")
    }

    func testTimesEveryPhaseExactly() throws {
        let clock = FakeClock()
        let backend = FakeBackend(clock: clock)
        let p = try plan()
        let r = BenchRunner(clock: clock).runOne(plan: p, run: p.runs[0], environment: FakeEnvironment(),
                                                 openBackend: { backend }, fixedPixels: { [Float](repeating: 1, count: 12) })
        XCTAssertEqual(r.status, "ok")
        XCTAssertNil(r.error)
        XCTAssertEqual(r.compileNs, 30_000_000)
        XCTAssertEqual(r.loadNs, 7_000_000)
        XCTAssertEqual(r.firstInferenceNs, 1_000_000)
        XCTAssertEqual(r.latencyNs, (4...8).map { 1_000_000 + UInt64($0) * 1_000 })
        XCTAssertEqual(r.featureSample?.count, 16)
        XCTAssertEqual(r.device.thermalStateStart, "nominal")
        XCTAssertEqual(r.device.thermalStateEnd, "fair")
        XCTAssertTrue(backend.closed)
    }

    func testFailuresStillProduceResults() throws {
        let clock = FakeClock()
        let p = try plan()
        let failed = BenchRunner(clock: clock).runOne(plan: p, run: p.runs[0], environment: FakeEnvironment(),
                                                      openBackend: { FakeBackend(clock: clock, failOnLoad: true) },
                                                      fixedPixels: { [Float](repeating: 1, count: 12) })
        XCTAssertEqual(failed.status, "error")
        XCTAssertEqual(failed.error, "model file is truncated")
        XCTAssertTrue(failed.latencyNs.isEmpty)
        let partial = BenchRunner(clock: clock).runOne(plan: p, run: p.runs[0], environment: FakeEnvironment(),
                                                       openBackend: { FakeBackend(clock: clock, failAtRun: 6) },
                                                       fixedPixels: { [Float](repeating: 1, count: 12) })
        XCTAssertEqual(partial.status, "partial")
        XCTAssertEqual(partial.latencyNs.count, 2)
    }

    func testResultsAreWrittenWithNulls() throws {
        let clock = FakeClock()
        let p = try plan()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        let files = try PlanExecutor(runner: BenchRunner(clock: clock), writer: ResultWriter(directory: dir),
                                     environment: FakeEnvironment())
            .execute(plan: p, openBackend: { _ in FakeBackend(clock: clock, failOnLoad: true) },
                     fixedPixels: { _ in nil })
        XCTAssertEqual(files.count, 1)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: files[0]), options: []) as? [String: Any]
        XCTAssertTrue(object?["first_inference_ns"] is NSNull)
        XCTAssertTrue(object?["feature_sample"] is NSNull)
        XCTAssertEqual(object?["status"] as? String, "error")
    }

    /// A sample holds the prediction and reading the features back, like Android's; the result says so.
    func testASampleIncludesReadingTheFeaturesBack() throws {
        let clock = FakeClock()
        let p = try plan()
        let r = BenchRunner(clock: clock).runOne(plan: p, run: p.runs[0], environment: FakeEnvironment(),
                                                 openBackend: { FakeBackend(clock: clock, outputNs: 200_000) },
                                                 fixedPixels: { [Float](repeating: 1, count: 12) })
        XCTAssertEqual(r.latencyNs, (4...8).map { 1_200_000 + UInt64($0) * 1_000 })
        XCTAssertEqual(r.firstInferenceNs, 1_200_000)
        XCTAssertEqual(r.timedRegion, "inference+read_features")
    }

    /// At most one progress report per 250 ms (and the last), so the main thread redraws a few times a second.
    func testProgressIsThrottled() throws {
        let clock = FakeClock()
        let p = try plan(iterations: 20, warmup: 0)
        var reports = [Int]()
        _ = BenchRunner(clock: clock).runOne(plan: p, run: p.runs[0], environment: FakeEnvironment(),
                                             openBackend: { FakeBackend(clock: clock, runNs: 100_000_000) },
                                             fixedPixels: { [Float](repeating: 1, count: 12) },
                                             progress: { done, _ in reports.append(done) })
        XCTAssertLessThanOrEqual(reports.count, 2_000 / 250 + 1, "\(reports)")
        XCTAssertEqual(reports.last, 20)
    }

    func testLaunchIdAndRunKeyAreWritten() throws {
        let clock = FakeClock()
        let p = try plan()
        let r = BenchRunner(clock: clock).runOne(plan: p, run: p.runs[0], environment: FakeEnvironment(),
                                                 openBackend: { FakeBackend(clock: clock) },
                                                 fixedPixels: { [Float](repeating: 1, count: 12) },
                                                 launchId: "20250302T091500-3fa9c1")
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r), options: []) as? [String: Any]
        XCTAssertEqual(object?["launch_id"] as? String, "20250302T091500-3fa9c1")
        XCTAssertEqual(object?["run_key"] as? String, "00-tiny-all")
        XCTAssertNil((object?["runtime"] as? [String: Any])?["options"], "Core ML sets no delegate options")
    }

    /// The newest plan wins wherever it is, the built-in one on a tie: an old Documents copy no longer shadows it.
    func testTheNewestPlanIsRun() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        func write(_ folder: String, _ createdAt: String) throws -> URL {
            let dir = root.appendingPathComponent(folder)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: nil)
            var text = String(data: try JSONEncoder().encode(try plan()), encoding: .utf8)!
            text = text.replacingOccurrences(of: "2025-03-01T12:00:00Z", with: createdAt)
            let url = dir.appendingPathComponent("plan.json")
            try Data(text.utf8).write(to: url)
            return url
        }
        let bundled = try write("bundle", "2025-04-01T10:00:00Z")
        let oldDocs = try write("docs-old", "2025-03-01T10:00:00Z")
        let newDocs = try write("docs-new", "2025-05-01T10:00:00Z")
        let tie = try write("docs-tie", "2025-04-01T10:00:00Z")
        XCTAssertEqual(BenchPlan.newest(of: [bundled, oldDocs]), bundled)
        XCTAssertEqual(BenchPlan.newest(of: [bundled, newDocs]), newDocs)
        XCTAssertEqual(BenchPlan.newest(of: [bundled, tie]), bundled)
        XCTAssertNil(BenchPlan.newest(of: []))
    }
}
