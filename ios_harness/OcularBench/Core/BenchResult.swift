import Foundation

/// results v1 `artifact`.
struct ArtifactInfo: Codable, Equatable {
    var name: String
    var format: String
    var sha256: String
    var precision: String?
    var sizeBytes: Int64?

    enum CodingKeys: String, CodingKey {
        case name, format, sha256, precision
        case sizeBytes = "size_bytes"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(format, forKey: .format)
        try c.encode(sha256, forKey: .sha256)
        try c.encode(precision, forKey: .precision)
        try c.encodeIfPresent(sizeBytes, forKey: .sizeBytes) // optional in v1
    }
}

/// results v1 `device`.
struct DeviceInfo: Codable, Equatable {
    var platform: String
    var identifier: String
    var marketingName: String?
    var osVersion: String
    var thermalStateStart: String
    var thermalStateEnd: String
    var lowPowerMode: Bool?
    var batteryState: String?
    var cpu: String?
    var cores: Int?

    enum CodingKeys: String, CodingKey {
        case platform, identifier, cpu, cores
        case marketingName = "marketing_name"
        case osVersion = "os_version"
        case thermalStateStart = "thermal_state_start"
        case thermalStateEnd = "thermal_state_end"
        case lowPowerMode = "low_power_mode"
        case batteryState = "battery_state"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(platform, forKey: .platform)
        try c.encode(identifier, forKey: .identifier)
        try c.encode(marketingName, forKey: .marketingName)
        try c.encode(osVersion, forKey: .osVersion)
        try c.encode(thermalStateStart, forKey: .thermalStateStart)
        try c.encode(thermalStateEnd, forKey: .thermalStateEnd)
        try c.encode(lowPowerMode, forKey: .lowPowerMode)
        try c.encode(batteryState, forKey: .batteryState)
        try c.encode(cpu, forKey: .cpu)
        try c.encode(cores, forKey: .cores)
    }
}

/// results v1 `app`.
struct AppInfo: Codable, Equatable {
    var name: String
    var version: String
    var build: String
}

/// A string, boolean or number: the values of results v1 `runtime.options`.
enum JSONScalar: Codable, Equatable {
    case bool(Bool)
    case number(Double)
    case string(String)

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else {
            self = .string(try c.decode(String.self))
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .bool(let b):
            try c.encode(b)
        case .number(let d):
            try c.encode(d)
        case .string(let s):
            try c.encode(s)
        }
    }
}

/// results v1 `runtime`.
struct RuntimeInfo: Codable, Equatable {
    var name: String
    var version: String
    var computeUnits: String?
    var delegate: String?
    var threads: Int?
    /// Settings the app set explicitly (Android's GPU delegate); optional in v1, written only when set.
    var options: [String: JSONScalar]?

    enum CodingKeys: String, CodingKey {
        case name, version, delegate, threads, options
        case computeUnits = "compute_units"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(version, forKey: .version)
        try c.encode(computeUnits, forKey: .computeUnits)
        try c.encode(delegate, forKey: .delegate)
        try c.encode(threads, forKey: .threads)
        try c.encodeIfPresent(options, forKey: .options)
    }
}

/// One run in results schema v1: raw integer nanoseconds, never statistics (Python computes those).
struct BenchResult: Codable, Equatable {
    /// What this writer writes (results v2); a v1 file still decodes, and encodes back as v1.
    static let currentSchemaVersion = 2
    static let featureSampleLength = 16
    /// What one latency sample contains (results v1 `timed_region`): the prediction and reading every
    /// feature back as float32 — what the Android runner times too.
    static let timedRegionValue = "inference+read_features"

    var schemaVersion: Int = BenchResult.currentSchemaVersion
    var runId: String
    var status: String
    var error: String?
    var createdAt: String
    var planId: String?
    var artifact: ArtifactInfo
    var device: DeviceInfo
    var app: AppInfo
    var runtime: RuntimeInfo
    var timing: ProtocolInfo
    var loadNs: UInt64?
    var compileNs: UInt64?
    var firstInferenceNs: UInt64?
    var latencyNs: [UInt64]
    var featureDim: Int?
    var featureSample: [Double]?
    var notes: String?
    /// The launch this run belongs to (`-launch_id`), so a collector counts only this launch's files.
    var launchId: String?
    /// The plan run key (`runs[].key`).
    var runKey: String?
    /// Optional in v1: nil only when decoded from a file that did not say.
    var timedRegion: String?
    // results v2 (toolchain/bench/measures.py); all nil in a v1 result.
    var coldLoadNs: UInt64?
    var warmLoadNs: [UInt64]?
    var nativeLatencyNs: [UInt64]?
    var memory: MemoryRecord?
    var placement: PlacementRecord?
    var deviceState: DeviceStateRecord?

    enum CodingKeys: String, CodingKey {
        case memory, placement
        case coldLoadNs = "cold_load_ns"
        case warmLoadNs = "warm_load_ns"
        case nativeLatencyNs = "native_latency_ns"
        case deviceState = "device_state"
        case status, error, artifact, device, app, runtime, notes
        case launchId = "launch_id"
        case runKey = "run_key"
        case timedRegion = "timed_region"
        case schemaVersion = "schema_version"
        case runId = "run_id"
        case createdAt = "created_at"
        case planId = "plan_id"
        case timing = "protocol"
        case loadNs = "load_ns"
        case compileNs = "compile_ns"
        case firstInferenceNs = "first_inference_ns"
        case latencyNs = "latency_ns"
        case featureDim = "feature_dim"
        case featureSample = "feature_sample"
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(runId, forKey: .runId)
        try c.encode(status, forKey: .status)
        try c.encode(error, forKey: .error)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(planId, forKey: .planId)
        try c.encode(launchId, forKey: .launchId)
        try c.encode(runKey, forKey: .runKey)
        try c.encodeIfPresent(timedRegion, forKey: .timedRegion)
        try c.encode(artifact, forKey: .artifact)
        try c.encode(device, forKey: .device)
        try c.encode(app, forKey: .app)
        try c.encode(runtime, forKey: .runtime)
        try c.encode(timing, forKey: .timing)
        try c.encode(loadNs, forKey: .loadNs)
        try c.encode(compileNs, forKey: .compileNs)
        try c.encode(firstInferenceNs, forKey: .firstInferenceNs)
        try c.encode(latencyNs, forKey: .latencyNs)
        try c.encode(featureDim, forKey: .featureDim)
        try c.encode(featureSample, forKey: .featureSample)
        try c.encodeIfPresent(notes, forKey: .notes)
        if schemaVersion >= 2 {
            try c.encode(coldLoadNs, forKey: .coldLoadNs)
            try c.encode(warmLoadNs ?? [], forKey: .warmLoadNs)
            try c.encode(nativeLatencyNs, forKey: .nativeLatencyNs)
            try c.encode(memory, forKey: .memory)
            try c.encode(placement ?? PlacementRecord.unknown("not recorded"), forKey: .placement)
            try c.encode(deviceState ?? DeviceStateRecord(samples: [], stayedForeground: nil, screenStayedOn: nil),
                         forKey: .deviceState)
        }
    }

    /// ISO 8601 UTC with milliseconds, e.g. 2025-03-01T14:22:05.318Z.
    static func utcTimestamp(_ date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
        return f.string(from: date)
    }

    /// plan id, run key and a random suffix, limited to [A-Za-z0-9._-]{1,128}.
    static func newRunId(planId: String?, key: String, suffix: String? = nil) -> String {
        let tail = suffix ?? String(UUID().uuidString.lowercased().prefix(8))
        let raw = [planId, key, tail].compactMap { $0 }.joined(separator: ".")
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
        let cleaned = String(raw.unicodeScalars.map { allowed.contains($0) ? Character($0) : "_" })
        return String(cleaned.prefix(128))
    }
}
