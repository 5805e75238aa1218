import Foundation

/// results v2 (toolchain/bench/measures.py): what a run records beside its latency samples.

/// One device-state reading; nil where the app cannot tell (iOS has no public "screen on").
struct DeviceStateReading: Equatable {
    var batteryLevel: Double?
    var charging: Bool?
    var lowPowerMode: Bool?
    var thermalState: String
    var foreground: Bool?
    var screenOn: Bool?
}

/// results v2 `device_state.samples[]`.
struct StateSample: Codable, Equatable {
    var tMs: UInt64
    var batteryLevel: Double?
    var charging: Bool?
    var lowPowerMode: Bool?
    var thermalState: String
    var foreground: Bool?
    var screenOn: Bool?

    enum CodingKeys: String, CodingKey {
        case charging
        case tMs = "t_ms"
        case batteryLevel = "battery_level"
        case lowPowerMode = "low_power_mode"
        case thermalState = "thermal_state"
        case foreground
        case screenOn = "screen_on"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(tMs, forKey: .tMs)
        try c.encode(batteryLevel, forKey: .batteryLevel)
        try c.encode(charging, forKey: .charging)
        try c.encode(lowPowerMode, forKey: .lowPowerMode)
        try c.encode(thermalState, forKey: .thermalState)
        try c.encode(foreground, forKey: .foreground)
        try c.encode(screenOn, forKey: .screenOn)
    }
}

/// results v2 `device_state`.
struct DeviceStateRecord: Codable, Equatable {
    var samples: [StateSample]
    var stayedForeground: Bool?
    var screenStayedOn: Bool?

    enum CodingKeys: String, CodingKey {
        case samples
        case stayedForeground = "stayed_foreground"
        case screenStayedOn = "screen_stayed_on"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(samples, forKey: .samples)
        try c.encode(stayedForeground, forKey: .stayedForeground)
        try c.encode(screenStayedOn, forKey: .screenStayedOn)
    }
}

/// results v2 `memory`: iOS reads `phys_footprint` (task_info TASK_VM_INFO).
struct MemoryRecord: Codable, Equatable {
    var kind: String
    var beforeBytes: UInt64?
    var afterBytes: UInt64?
    var peakBytes: UInt64?
    /// Android's native heap (read back from its files; the iOS app never sets them).
    var nativeHeapBeforeBytes: UInt64?
    var nativeHeapAfterBytes: UInt64?

    enum CodingKeys: String, CodingKey {
        case kind
        case beforeBytes = "before_bytes"
        case afterBytes = "after_bytes"
        case peakBytes = "peak_bytes"
        case nativeHeapBeforeBytes = "native_heap_before_bytes"
        case nativeHeapAfterBytes = "native_heap_after_bytes"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(beforeBytes, forKey: .beforeBytes)
        try c.encode(afterBytes, forKey: .afterBytes)
        try c.encode(peakBytes, forKey: .peakBytes)
        try c.encodeIfPresent(nativeHeapBeforeBytes, forKey: .nativeHeapBeforeBytes)
        try c.encodeIfPresent(nativeHeapAfterBytes, forKey: .nativeHeapAfterBytes)
    }
}

/// One memory reading: the footprint now and the process's peak so far (the kernel's ledger, where it has one).
struct MemoryReading: Equatable {
    var bytes: UInt64
    var peakBytes: UInt64?
}

/// results v2 `placement`: Core ML's MLComputePlan per-op preferred devices (iOS 17.4+), else unknown.
struct PlacementRecord: Codable, Equatable {
    var source: String
    var totalNodes: Int?
    var delegatedNodes: Int?
    var opsByDevice: [String: Int]?
    var note: String?

    enum CodingKeys: String, CodingKey {
        case source, note
        case totalNodes = "total_nodes"
        case delegatedNodes = "delegated_nodes"
        case opsByDevice = "ops_by_device"
    }

    static func unknown(_ why: String) -> PlacementRecord {
        return PlacementRecord(source: "unknown", totalNodes: nil, delegatedNodes: nil, opsByDevice: nil, note: why)
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(source, forKey: .source)
        try c.encode(totalNodes, forKey: .totalNodes)
        try c.encode(delegatedNodes, forKey: .delegatedNodes)
        try c.encode(opsByDevice, forKey: .opsByDevice)
        try c.encode(note, forKey: .note)
    }
}

/// Samples the device state between timed iterations (never inside one), at most `maxSamples`.
final class StateRecorder {
    static let maxSamples = 256
    private let clock: NanoClock
    private let start: UInt64
    private let read: () -> DeviceStateReading?
    private(set) var samples = [StateSample]()

    init(clock: NanoClock, read: @escaping () -> DeviceStateReading?) {
        self.clock = clock
        self.start = clock.now()
        self.read = read
    }

    func sample() {
        guard let s = read() else { return }
        let stamped = StateSample(tMs: (clock.now() - start) / 1_000_000, batteryLevel: s.batteryLevel,
                                  charging: s.charging, lowPowerMode: s.lowPowerMode, thermalState: s.thermalState,
                                  foreground: s.foreground, screenOn: s.screenOn)
        if samples.count >= StateRecorder.maxSamples {
            samples[samples.count - 1] = stamped
        } else {
            samples.append(stamped)
        }
    }

    private func all(_ f: (StateSample) -> Bool?) -> Bool? {
        let values = samples.map(f)
        if values.isEmpty || values.contains(where: { $0 == nil }) { return nil }
        return values.allSatisfy { $0 == true }
    }

    var record: DeviceStateRecord {
        return DeviceStateRecord(samples: samples, stayedForeground: all { $0.foreground },
                                 screenStayedOn: all { $0.screenOn })
    }
}

extension InferenceBackend {
    /// Where the graph runs, known after `prepare` (results v2 `placement`).
    func placement() -> PlacementRecord {
        return PlacementRecord.unknown("the runtime does not report where its ops run")
    }
}

extension BenchEnvironment {
    /// The thermal state alone where the app knows nothing more.
    func readState() -> DeviceStateReading? {
        return DeviceStateReading(batteryLevel: nil, charging: nil, lowPowerMode: nil, thermalState: thermalState(),
                                  foreground: nil, screenOn: nil)
    }

    /// This process's memory now, or nil where it cannot be read.
    func memory() -> MemoryReading? {
        return nil
    }
}
