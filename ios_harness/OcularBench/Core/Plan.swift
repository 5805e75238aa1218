import Foundation

/// How every run of a plan is timed (results v1 `protocol`). Times in ms, counts in iterations.
struct ProtocolInfo: Codable, Equatable {
    var warmup: Int
    var iterations: Int
    var inputSource: String
    var inputSeed: Int64?
    var cooldownMs: Int

    enum CodingKeys: String, CodingKey {
        case warmup, iterations
        case inputSource = "input_source"
        case inputSeed = "input_seed"
        case cooldownMs = "cooldown_ms"
    }

    // Written by hand so that nil becomes JSON null: the synthesized encoder drops the key.
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(iterations, forKey: .iterations)
        try c.encode(inputSource, forKey: .inputSource)
        try c.encode(inputSeed, forKey: .inputSeed)
        try c.encode(cooldownMs, forKey: .cooldownMs)
    }
}

struct Quantization: Codable, Equatable {
    var scale: Double
    var zeroPoint: Int

    enum CodingKeys: String, CodingKey {
        case scale
        case zeroPoint = "zero_point"
    }
}

/// The model input: raw pixels 0..255 as float32 in `layout` (normalisation is inside the model); `color`
/// "rgb" | "bgr" | "gray" (nil in older plans: gray for 1 channel, rgb for 3; see `PixelGeometry`).
struct TensorSpec: Codable, Equatable {
    var name: String
    var shape: [Int]
    var layout: String?
    var dtype: String?
    var quantization: Quantization?
    var color: String? = nil

    var elementCount: Int { return shape.reduce(1, *) }
}

struct PlanArtifact: Codable, Equatable {
    var name: String
    var format: String
    var path: String
    var sha256: String
    var precision: String?
    var sizeBytes: Int64?

    enum CodingKeys: String, CodingKey {
        case name, format, path, sha256, precision
        case sizeBytes = "size_bytes"
    }
}

struct OutputSpec: Codable, Equatable {
    var name: String
    var dim: Int
}

/// One artifact with one compute unit: one results file.
struct PlanRun: Codable, Equatable {
    var key: String
    var artifact: PlanArtifact
    var computeUnits: String
    var delegate: String?
    var threads: Int?
    var input: TensorSpec
    var output: OutputSpec
    var fixedInput: String?
    var referenceSample: [Double]?

    enum CodingKeys: String, CodingKey {
        case key, artifact, delegate, threads, input, output
        case computeUnits = "compute_units"
        case fixedInput = "fixed_input"
        case referenceSample = "reference_sample"
    }
}

/// `plan.json` as written by `deploy bench plan` (PLAN_SCHEMA in toolchain/bench/schema.py).
struct BenchPlan: Codable {
    static let supportedVersion = 1

    var planVersion: Int
    var planId: String
    var createdAt: String
    var device: String
    var platform: String
    var timing: ProtocolInfo
    var inputs: [String]
    var runs: [PlanRun]
    var warnings: [String]?

    enum CodingKeys: String, CodingKey {
        case device, platform, inputs, runs, warnings
        case planVersion = "plan_version"
        case planId = "plan_id"
        case createdAt = "created_at"
        case timing = "protocol"
    }

    /// Decodes and checks a plan; every problem is a `HarnessError.badPlan` that says what to fix.
    static func decode(_ data: Data, source: String) throws -> BenchPlan {
        let plan: BenchPlan
        do {
            plan = try JSONDecoder().decode(BenchPlan.self, from: data)
        } catch {
            throw HarnessError.badPlan("\(source) is not a v1 plan: \(error)")
        }
        guard plan.planVersion == supportedVersion else {
            throw HarnessError.badPlan("\(source): plan_version \(plan.planVersion) is not supported; update the app")
        }
        guard !plan.runs.isEmpty else {
            throw HarnessError.badPlan("\(source) has no runs")
        }
        guard plan.timing.iterations >= 1, plan.timing.warmup >= 0, plan.timing.cooldownMs >= 0 else {
            throw HarnessError.badPlan("\(source): protocol needs iterations >= 1, warmup >= 0, cooldown_ms >= 0")
        }
        for run in plan.runs where run.artifact.path.hasPrefix("/") || run.artifact.path.components(separatedBy: "/").contains("..") {
            throw HarnessError.badPlan("\(source): \(run.artifact.path) must be relative to the plan folder")
        }
        return plan
    }

    static func load(from url: URL) throws -> BenchPlan {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw HarnessError.missingFile("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try decode(data, source: url.lastPathComponent)
    }
}

extension BenchPlan {
    /// Which of several plan files to run: the one written last (`created_at`, as `deploy bench plan`
    /// stamps it); on a tie the earlier candidate, so list the plan built into the app first.
    ///
    /// A plan copied into Documents once used to win over the bundled one for good, so an app rebuilt
    /// with a new plan kept running the old one; now the newest wins whichever folder it is in.
    /// Unreadable candidates are passed over (the first one is returned when none can be read, so its
    /// error is what the user sees). Example: bundled 2025-04-01, Documents 2025-03-01 -> bundled.
    static func newest(of candidates: [URL]) -> URL? {
        var best: (url: URL, createdAt: Date)?
        for url in candidates {
            guard let plan = try? BenchPlan.load(from: url) else {
                continue
            }
            let when = BenchPlan.utcDate(plan.createdAt) ?? .distantPast
            if best == nil || when > best!.createdAt {
                best = (url, when)
            }
        }
        return best?.url ?? candidates.first
    }

    /// "2025-03-02T09:15:00Z" (or with fractional seconds) as a Date; nil when it is not ISO 8601.
    static func utcDate(_ text: String) -> Date? {
        let plain = ISO8601DateFormatter()
        if let d = plain.date(from: text) {
            return d
        }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)
    }
}

/// The errors the harness reports in a result's `error` field.
enum HarnessError: Error, CustomStringConvertible {
    case badPlan(String)
    case missingFile(String)
    case badInput(String)
    case unsupported(String)
    case stopped(String)

    var description: String {
        switch self {
        case .badPlan(let m), .missingFile(let m), .badInput(let m), .unsupported(let m), .stopped(let m):
            return m
        }
    }
}
