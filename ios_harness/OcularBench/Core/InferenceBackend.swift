import Foundation

enum Phase {
    case load
    case compile
}

/// Times named preparation phases with the runner's clock, so backends never time themselves.
final class PhaseTimer {
    private let clock: NanoClock
    private(set) var loadNs: UInt64?
    private(set) var compileNs: UInt64?

    init(clock: NanoClock) {
        self.clock = clock
    }

    /// Runs `block`; its duration is added to `load_ns` or `compile_ns` (a phase never timed stays null).
    func time<T>(_ phase: Phase, _ block: () throws -> T) rethrows -> T {
        let t0 = clock.now()
        let value = try block()
        let dt = clock.now() - t0
        switch phase {
        case .load:
            loadNs = (loadNs ?? 0) + dt
        case .compile:
            compileNs = (compileNs ?? 0) + dt
        }
        return value
    }
}

/// One runtime running one artifact (Core ML in the app, a fake with known delays in the tests).
/// Lifecycle: `prepare` once, then `setInput` + `run` many times, `output` after a run, `close`.
protocol InferenceBackend: AnyObject {
    /// results v1 `runtime.name`, e.g. "coreml".
    var runtimeName: String { get }
    var runtimeVersion: String { get }
    func prepare(timer: PhaseTimer) throws
    /// Raw RGB pixels 0..255 in the plan's layout.
    func setInput(_ pixels: [Float]) throws
    func run() throws
    /// The feature vector of the last run.
    func output() throws -> [Float]
    func close()
    /// Where the graph runs, known after `prepare` (results v2 `placement`; default: unknown).
    func placement() -> PlacementRecord
}

/// What the app knows about where it runs; the thermal state is read at the start and end of a run.
protocol BenchEnvironment {
    /// Device facts; the runner fills in the thermal states.
    func deviceInfo() -> DeviceInfo
    var appInfo: AppInfo { get }
    /// nominal, fair, serious, critical or unknown.
    func thermalState() -> String
    /// Battery, charging, low power, thermal state, foreground, screen now (results v2; default: thermal only).
    func readState() -> DeviceStateReading?
    /// This process's memory now (results v2 `memory`; default: nil).
    func memory() -> MemoryReading?
}
